"""Requests and responses of the policy in force and its versions."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from faceledger.domain.policy import Policy
from faceledger.services.policies import MAX_POLICY_BYTES, StoredPolicy


class PurposeOut(BaseModel):
    id: str
    description: str
    galleries: list[str]
    justification_required: bool


class ProhibitedPurposeOut(BaseModel):
    id: str
    description: str


class GalleryRuleOut(BaseModel):
    name: str
    units: list[str] | None = Field(description="Units that may search it; None: every unit.")
    retention_days: int | None


class PolicyRules(BaseModel):
    """What a search form needs to know: purposes, galleries, the case number format, limits."""

    organisation: str
    case_number_pattern: str
    case_number_example: str
    purposes: list[PurposeOut]
    prohibited_purposes: list[ProhibitedPurposeOut]
    galleries: list[GalleryRuleOut]
    probe_quality_floor: float
    daily_search_limit: int
    device_required_for: list[str]
    inter_agency_allowed: bool
    lead_notice: str

    @classmethod
    def of(cls, policy: Policy) -> PolicyRules:
        return cls(
            organisation=policy.organisation,
            case_number_pattern=policy.case_number_pattern,
            case_number_example=policy.case_number_example,
            purposes=[
                PurposeOut(
                    id=p.id,
                    description=p.description,
                    galleries=sorted(p.galleries),
                    justification_required=p.justification_required,
                )
                for p in policy.purposes
            ],
            prohibited_purposes=[
                ProhibitedPurposeOut(id=p.id, description=p.description) for p in policy.prohibited
            ],
            galleries=[
                GalleryRuleOut(
                    name=g.name,
                    units=None if g.units is None else sorted(g.units),
                    retention_days=g.retention_days,
                )
                for g in policy.galleries
            ],
            probe_quality_floor=policy.probe_quality_floor,
            daily_search_limit=policy.daily_search_limit,
            device_required_for=sorted(a.value for a in policy.device_required_for),
            inter_agency_allowed=policy.inter_agency_allowed,
            lead_notice=policy.lead_notice,
        )


class PolicyVersionOut(BaseModel):
    """One loaded version of the policy file, as kept for ever."""

    id: int
    version: str
    sha256: str
    organisation: str
    source: str
    loaded_by: str
    loaded_at: datetime
    active: bool

    @classmethod
    def of(cls, stored: StoredPolicy) -> PolicyVersionOut:
        return cls.model_validate(stored.to_dict())


class PolicyOut(PolicyVersionOut):
    rules: PolicyRules
    text: str | None = Field(default=None, description="The policy file itself (with ?text=true).")

    @classmethod
    def full(cls, stored: StoredPolicy, *, text: bool) -> PolicyOut:
        return cls(
            **stored.to_dict(),
            rules=PolicyRules.of(stored.policy()),
            text=stored.text if text else None,
        )


class PolicyUpload(BaseModel):
    text: str = Field(
        min_length=1,
        max_length=MAX_POLICY_BYTES,
        description="The policy file (TOML, docs/policy.md); raise its version to replace the one in force.",
    )
    source: str = Field(
        default="uploaded over the API", min_length=1, max_length=200, description="Where it came from."
    )
