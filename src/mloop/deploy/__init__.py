"""Deployments: named endpoints that carry traffic between model versions (issue 16)."""

from __future__ import annotations
