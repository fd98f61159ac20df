"""The operator table: what each filter operator means, one row per operator.

Validation (which operators a field kind allows, how many values each takes)
and both SQL compilers read their rules from these rows, as datasette's
`filters.py` keeps one table of `?col__op=` lookups: a new operator, or a
change to what one means, is a change to one row here, and neither store
can quietly disagree with the other about it.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

from mailevents.v1 import message_event_service_pb2 as spb


class Shape(enum.Enum):
    """How an operator compares a column with its values."""

    COMPARE = "compare"  # column <symbol> value (also date parts)
    IN = "in"  # column is one of the values
    IS_NULL = "is_null"  # one optional boolean value
    TEXT = "text"  # a text match (see `Match`), with or without case


class Match(enum.Enum):
    """Which part of a text the needle must equal."""

    WHOLE = "whole"
    CONTAINS = "contains"
    PREFIX = "prefix"
    SUFFIX = "suffix"


@dataclass(frozen=True)
class Operator:
    """One operator: its shape, SQL comparison symbol or text match, and value count."""

    value: int
    shape: Shape
    #: The SQL comparison for COMPARE (EXACT is `=`; every store agrees on these).
    symbol: str = ""
    #: For TEXT: which part must match, and whether case is ignored (Python's lower()).
    match: Match | None = None
    ignore_case: bool = False

    @property
    def name(self) -> str:
        """`OPERATOR_ICONTAINS` -> "icontains", for messages people read."""
        return spb.Operator.Name(self.value).removeprefix("OPERATOR_").lower()

    @property
    def single_value(self) -> bool:
        """Takes exactly one value (IN takes any number, IS_NULL at most one)."""
        return self.shape in (Shape.COMPARE, Shape.TEXT)

    @property
    def empty_means_not_null(self) -> bool:
        """With an empty needle, a partial match holds for every text (each text
        contains, starts and ends with ""), so it means "is not null"; only a
        whole-text match still compares."""
        return self.shape is Shape.TEXT and self.match is not Match.WHOLE

    @property
    def ordered(self) -> bool:
        """A range comparison: needs a kind with an order."""
        return self.shape is Shape.COMPARE and self.symbol != "="


def _text(value: int, match: Match, ignore_case: bool) -> Operator:
    return Operator(value, Shape.TEXT, "", match, ignore_case)


#: Every operator the query core accepts, by its proto value.
BY_VALUE: dict[int, Operator] = {
    op.value: op
    for op in (
        Operator(spb.OPERATOR_EXACT, Shape.COMPARE, "="),
        Operator(spb.OPERATOR_IN, Shape.IN),
        Operator(spb.OPERATOR_IS_NULL, Shape.IS_NULL),
        Operator(spb.OPERATOR_GT, Shape.COMPARE, ">"),
        Operator(spb.OPERATOR_GTE, Shape.COMPARE, ">="),
        Operator(spb.OPERATOR_LT, Shape.COMPARE, "<"),
        Operator(spb.OPERATOR_LTE, Shape.COMPARE, "<="),
        _text(spb.OPERATOR_IEXACT, Match.WHOLE, True),
        _text(spb.OPERATOR_CONTAINS, Match.CONTAINS, False),
        _text(spb.OPERATOR_ICONTAINS, Match.CONTAINS, True),
        _text(spb.OPERATOR_STARTS_WITH, Match.PREFIX, False),
        _text(spb.OPERATOR_ISTARTS_WITH, Match.PREFIX, True),
        _text(spb.OPERATOR_ENDS_WITH, Match.SUFFIX, False),
        _text(spb.OPERATOR_IENDS_WITH, Match.SUFFIX, True),
    )
}


def _where(test: Callable[[Operator], bool]) -> frozenset[int]:
    return frozenset(v for v, op in BY_VALUE.items() if test(op))


#: Range comparisons (gt, gte, lt, lte).
ORDERED = _where(lambda op: op.ordered)
#: Text matches (iexact, contains, starts_with, ends_with and their case-free forms).
TEXT_MATCH = _where(lambda op: op.shape is Shape.TEXT)
#: Operators taking exactly one value.
SINGLE_VALUE = _where(lambda op: op.single_value)
