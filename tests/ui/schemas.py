"""`GET /metadata` bodies written by hand, one per schema version, for the tests that need no
service: a version-1 schema (numbers only, ``dtype``) and a version-2 one with every kind."""

from __future__ import annotations

from typing import Any

V1_BODY: dict[str, Any] = {
    "name": "cepage-classifier",
    "version": "3",
    "max_records": 100,
    "feature_schema": {
        "schema_version": 1,
        "target": "cultivar",
        "classes": ["a", "b"],
        "features": [
            {"name": "alcohol", "dtype": "number", "min": 11.0, "max": 14.8, "median": 13.05},
            {"name": "magnesium", "dtype": "integer", "min": 70, "max": 162, "median": 98},
        ],
    },
}

CHARGES = "Monthly charges ($)"
CALLS = "support calls"
PAPERLESS = "paperless billing"
AUTOPAY = "autopay"
PLAN = "plan type"
REGION = "region"

V2_BODY: dict[str, Any] = {
    "name": "cepage-classifier",
    "version": "4",
    "max_records": 100,
    "feature_schema": {
        "schema_version": 2,
        "target": "churned?",
        "classes": ["left", "stayed"],
        "features": [
            {
                "name": CHARGES,
                "kind": "number",
                "nullable": True,
                "missing_share": 0.0625,
                "min": 10.0,
                "max": 150.0,
                "median": 60.1,
                "reference": {"edges": [10.0, 80.0, 150.0], "fractions": [0.5, 0.5]},
            },
            {
                "name": CALLS,
                "kind": "integer",
                "nullable": False,
                "missing_share": 0.0,
                "min": 0,
                "max": 9,
                "median": 2,
                "reference": {"edges": [0, 4, 9], "fractions": [0.8, 0.2]},
            },
            {
                "name": PAPERLESS,
                "kind": "boolean",
                "nullable": True,
                "missing_share": 0.05,
                "true_share": 0.51,
                "reference": {"fractions": [0.49, 0.51]},
            },
            {
                "name": AUTOPAY,
                "kind": "boolean",
                "nullable": False,
                "missing_share": 0.0,
                "true_share": 0.3,
                "reference": {"fractions": [0.7, 0.3]},
            },
            {
                "name": PLAN,
                "kind": "category",
                "nullable": False,
                "missing_share": 0.0,
                "categories": ["basic", "standard", "premium", "legacy"],
                "frequencies": [0.49, 0.3, 0.2, 0.005],
                "reference": {"fractions": [0.49, 0.3, 0.2, 0.005]},
            },
            {
                "name": REGION,
                "kind": "category",
                "nullable": True,
                "missing_share": 0.075,
                "categories": ["north", "south"],
                "frequencies": [0.5, 0.425],
                "reference": {"fractions": [0.5, 0.425]},
            },
        ],
    },
}
