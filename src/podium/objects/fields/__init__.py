"""Typed fields of versioned objects.

Two layers, named as in oslo.versionedobjects so code ports with an import
change:

* a *field type* (``Integer()``, ``String()``, ``List(UUID())``...) knows how
  to coerce a Python value, and how to turn it into a JSON-ready primitive and
  back;
* a *field* (``IntegerField(nullable=True)``, or ``Field(Integer())``) adds
  ``nullable``, ``default`` and ``read_only``.

Each field type writes its conversions once (``coerce``, ``from_primitive``,
``to_primitive``) and declares, with :meth:`~AbstractFieldType.native`, the
values those return unchanged (a :class:`Native`: ``str`` for a string, an
``int`` in range for an integer...). Objects store such a value without a
call; that fast path is derived from the declaration in one place
(``_paths``), for podium's types and yours alike.

Type errors are raised as plain ``ValueError`` here; the object layer wraps
them in :class:`podium.exceptions.ObjectFieldError` naming class, field and
value.

The types live in modules by kind (``_scalars``, ``_enums``, ``_network``,
``_containers``, ``_objects``); this package is their one public name.
"""

from __future__ import annotations

# Beside __all__, IMMUTABLE_TYPES, T_co, T_elem, T_value, datetime_to_wire and the
# enum errors stay names of this module (its names before it became a package):
# hence the noqa.
from podium.exceptions import (  # noqa: F401
    EnumFieldInvalid,
    EnumFieldUnset,
    EnumRequiresValidValuesError,
    EnumValidValuesInvalidError,
)
from podium.objects.fields._containers import (
    CompoundFieldType,
    Dict,
    DictOfIntegersField,
    DictOfListOfStringsField,
    DictOfNullableStringsField,
    DictOfSetOfIntegersField,
    DictOfStringsField,
    DictProxyField,
    FlexibleDict,
    FlexibleDictField,
    List,
    ListOfDictOfNullableStringsField,
    ListOfIntegersField,
    ListOfListsOfStringsField,
    ListOfSetsOfIntegersField,
    ListOfStringsField,
    ListOfUUIDField,
    Set,
    SetOfIntegersField,
    SetOfStringsField,
)
from podium.objects.fields._core import (  # noqa: F401
    IMMUTABLE_TYPES,
    INT64_MAX,
    INT64_MIN,
    AbstractFieldType,
    ElementTypeError,
    FieldType,
    KeyTypeError,
    Native,
    T_co,
    T_elem,
    T_value,
    UnspecifiedDefault,
)
from podium.objects.fields._enums import (
    BaseEnumField,
    Enum,
    EnumField,
    ListOfEnumField,
    StateMachine,
)
from podium.objects.fields._field import (
    AutoTypedField,
    Field,
)
from podium.objects.fields._network import (
    IPAddress,
    IPAddressField,
    IPNetwork,
    IPNetworkField,
    IPV4Address,
    IPV4AddressField,
    IPV4AndV6Address,
    IPV4AndV6AddressField,
    IPV4Network,
    IPV4NetworkField,
    IPV6Address,
    IPV6AddressField,
    IPV6Network,
    IPV6NetworkField,
)
from podium.objects.fields._objects import (
    ListOfObjectsField,
    Object,
    ObjectField,
)
from podium.objects.fields._scalars import (
    UUID,
    Boolean,
    BooleanField,
    DateTime,
    DateTimeField,
    FlexibleBoolean,
    FlexibleBooleanField,
    Float,
    FloatField,
    Integer,
    IntegerField,
    MACAddress,
    MACAddressField,
    NonNegativeFloat,
    NonNegativeFloatField,
    NonNegativeInteger,
    NonNegativeIntegerField,
    PCIAddress,
    PCIAddressField,
    SensitiveString,
    SensitiveStringField,
    String,
    StringField,
    StringPattern,
    UUIDField,
    VersionPredicate,
    VersionPredicateField,
    datetime_to_wire,  # noqa: F401
)

__all__ = [
    "INT64_MAX",
    "INT64_MIN",
    "UUID",
    "AbstractFieldType",
    "AutoTypedField",
    "BaseEnumField",
    "Boolean",
    "BooleanField",
    "CompoundFieldType",
    "DateTime",
    "DateTimeField",
    "Dict",
    "DictOfIntegersField",
    "DictOfListOfStringsField",
    "DictOfNullableStringsField",
    "DictOfSetOfIntegersField",
    "DictOfStringsField",
    "DictProxyField",
    "ElementTypeError",
    "Enum",
    "EnumField",
    "Field",
    "FieldType",
    "FlexibleBoolean",
    "FlexibleBooleanField",
    "FlexibleDict",
    "FlexibleDictField",
    "Float",
    "FloatField",
    "IPAddress",
    "IPAddressField",
    "IPNetwork",
    "IPNetworkField",
    "IPV4Address",
    "IPV4AddressField",
    "IPV4AndV6Address",
    "IPV4AndV6AddressField",
    "IPV4Network",
    "IPV4NetworkField",
    "IPV6Address",
    "IPV6AddressField",
    "IPV6Network",
    "IPV6NetworkField",
    "Integer",
    "IntegerField",
    "KeyTypeError",
    "List",
    "ListOfDictOfNullableStringsField",
    "ListOfEnumField",
    "ListOfIntegersField",
    "ListOfListsOfStringsField",
    "ListOfObjectsField",
    "ListOfSetsOfIntegersField",
    "ListOfStringsField",
    "ListOfUUIDField",
    "MACAddress",
    "MACAddressField",
    "Native",
    "NonNegativeFloat",
    "NonNegativeFloatField",
    "NonNegativeInteger",
    "NonNegativeIntegerField",
    "Object",
    "ObjectField",
    "PCIAddress",
    "PCIAddressField",
    "SensitiveString",
    "SensitiveStringField",
    "Set",
    "SetOfIntegersField",
    "SetOfStringsField",
    "StateMachine",
    "String",
    "StringField",
    "StringPattern",
    "UUIDField",
    "UnspecifiedDefault",
    "VersionPredicate",
    "VersionPredicateField",
]

# The public name of every class and function is this package's, as before the split
# (reprs, pickles, remote exception names).
for _name in __all__:
    _value = globals()[_name]
    if isinstance(_value, type) or callable(_value):
        _value.__module__ = __name__
del _name, _value
