"""The local stack's PostgreSQL settings, without starting anything."""

from __future__ import annotations

import os

import pytest

from shop.localstack import pg_shared_buffers


def test_shared_buffers_follow_the_environment_when_set() -> None:
    assert pg_shared_buffers({"SHOP_PG_SHARED_BUFFERS": "2GB"}) == "2GB"


def test_shared_buffers_default_to_a_quarter_of_the_memory_within_bounds(monkeypatch: pytest.MonkeyPatch) -> None:
    page = 4096

    def machine(total_bytes: int) -> str:
        values = {"SC_PAGE_SIZE": page, "SC_PHYS_PAGES": total_bytes // page}
        monkeypatch.setattr(os, "sysconf", lambda name: values[name])
        return pg_shared_buffers({})

    assert machine(24 * 2**30) == "6144MB"  # this kind of machine: 24 GiB
    assert machine(512 * 2**20) == "256MB"  # never below PostgreSQL's usual minimum for the shop
    assert machine(256 * 2**30) == "8192MB"  # and never above 8 GB
    assert pg_shared_buffers({"SHOP_PG_SHARED_BUFFERS": " "}) == "8192MB"  # blank: the default (last machine)
