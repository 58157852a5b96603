"""The reference ticketing service and its catalogue of switchable bugs."""

from chaos.reference.app import create_app
from chaos.reference.bugs import CATALOGUE, parse_bugs

__all__ = ["CATALOGUE", "create_app", "parse_bugs"]
