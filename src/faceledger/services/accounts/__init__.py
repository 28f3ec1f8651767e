"""Accounts: users and roles, passwords, TOTP, sessions, API tokens, and the first administrator.

Everything a person does here, and every refusal, is written to the audit log in the same
transaction as the change it records. See docs/accounts.md for the rules; the modules:

* :mod:`.users` - administration (create, roles, suspend, expiry, password reset, TOTP, unlock)
* :mod:`.activation` - :func:`activate` (the owner's code and password) and :func:`vouch`
  (a supervisor of the unit): what makes a created or reset account usable
* :mod:`.signin` - :func:`authenticate` (sign-in: password, lockout, TOTP, device), :func:`logout`,
  and :func:`reauthenticate` (password and TOTP again before a sign-off step)
* :mod:`.principals` - :func:`principal_from_token`, run on every request
* :mod:`.tokens` - API tokens
* :mod:`.bootstrap` - the one-time bootstrap secret for the first system administrator
* :mod:`faceledger.services.devices` - registered agency devices
"""

from __future__ import annotations

from faceledger.services.accounts.activation import activate, vouch, vouch_as_installer
from faceledger.services.accounts.bootstrap import bootstrap_admin, claim_bootstrap, needs_bootstrap
from faceledger.services.accounts.guard import INCOMPATIBLE_ROLES, authorize, check_role_combination
from faceledger.services.accounts.principals import principal_from_token
from faceledger.services.accounts.records import Activation, ApiToken, Principal, User
from faceledger.services.accounts.signin import authenticate, logout, reauthenticate
from faceledger.services.accounts.tokens import create_token, list_tokens, revoke_token
from faceledger.services.accounts.users import (
    create_user,
    enrol_totp,
    get_user,
    list_users,
    parse_roles,
    reset_password,
    set_expiry,
    set_roles,
    suspend,
    unlock,
    unsuspend,
    update_user,
)
from faceledger.services.devices import DeviceCredential

__all__ = [
    "INCOMPATIBLE_ROLES",
    "Activation",
    "ApiToken",
    "DeviceCredential",
    "Principal",
    "User",
    "activate",
    "authenticate",
    "authorize",
    "bootstrap_admin",
    "check_role_combination",
    "claim_bootstrap",
    "create_token",
    "create_user",
    "enrol_totp",
    "get_user",
    "list_tokens",
    "list_users",
    "logout",
    "needs_bootstrap",
    "parse_roles",
    "principal_from_token",
    "reauthenticate",
    "reset_password",
    "revoke_token",
    "set_expiry",
    "set_roles",
    "suspend",
    "unlock",
    "unsuspend",
    "update_user",
    "vouch",
    "vouch_as_installer",
]
