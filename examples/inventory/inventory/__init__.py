"""An example service on podium: stock items kept by a conductor, reserved from workers."""
