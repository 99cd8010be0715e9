"""Document templates travel to the terminal as reference data: cached with the pull, replaced as a
whole when an admin stores a new version, unchanged pulls leave them alone."""

from __future__ import annotations

import httpx

from mobile_api.contracts.documents.templates import default_template_text
from mobile_api.contracts.sync import TemplateRef
from mobile_api.documents.services import FILE_NAMES
from tests.test_edge_agent import ready_agent, staff_headers


async def test_the_terminal_caches_the_agencys_templates(seeded, live_server, tmp_path):
    with ready_agent(live_server, tmp_path / "terminal", "13010001") as agent:
        cached = {t.name: t for t in agent.store.references("template")}
        assert set(cached) == set(FILE_NAMES)
        assert all(isinstance(t, TemplateRef) and t.version == "0" for t in cached.values())
        notice = default_template_text("rights_notice")
        assert cached["rights_notice"].body == notice
        assert "template" not in agent.sync().snapshots  # nothing changed: nothing sent

        reworded = notice.replace("经查，{违法事实}", "经本机关调查查明：{违法事实}")
        stored = httpx.put(
            f"{live_server.url}/api/documents/templates/rights_notice",
            json={"body": reworded},
            headers=staff_headers(live_server, "admin"),
        )
        assert stored.status_code == 200, stored.text
        assert agent.sync().snapshots == ["template"]
        cached = {t.name: t for t in agent.store.references("template")}
        assert (cached["rights_notice"].version, cached["rights_notice"].body) == ("1", reworded)
        assert cached["penalty_decision"].body == default_template_text("penalty_decision")
