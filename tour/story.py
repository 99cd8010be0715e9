"""One case from the street to the public portal, told step by step (DESIGN.md §1–§7).

Two simulated terminals (``edge_agent.Agent`` on their own stores under ``<data>/demo/``) act
for officers 张明 (13010001) and 李华 (13010002) of the demo agency; the reviewer and the admin
use the HTTP API as the console does; the server is ``zhifa serve`` in its own process. Nothing
is written to the database except through those paths and the disclosure job.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import re
import shutil
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import msgspec
import zxingcpp
from PIL import Image, ImageDraw
from sqlalchemy.engine import make_url

from disclosure.jobs import JobReport, run_due_jobs
from disclosure.reports import STATE_LABELS as DISCLOSURE_LABELS
from edge_agent.agent import Agent
from edge_agent.credentials import PartnerCheckRequired, card_lines
from edge_agent.documents import china_today
from edge_agent.recordings import (
    STOP_LABELS,
    Recordings,
    Take,
    capture,
    open_source,
    outcome_text,
    parse_gps,
)
from media.edge.config import RecorderConfig
from media.edge.storage import RecordingDir
from mobile_api.contracts.credential import CHINA_TZ
from mobile_api.contracts.qr import qr_png, qr_text
from mobile_api.contracts.sync import ReviewOutcomeRef
from review.schemas import CHECK_ITEMS, CHECKLIST
from server.app import demo
from server.app.context import AppContext
from server.app.wiring import wire
from server.core.settings import Settings
from tour.parts import Narrator, Server, Staff, TourFailed, choose_port, prepare_database

FIRST, SECOND = "13010001", "13010002"  # 张明 and 李华, 一大队
ITEM, REGION = "WH-CF-001", "示范市城东区"
PLACE = "示范市城东区人民路88号"
PARTY = {
    "type": "person",
    "name": "张三",
    "id_number": "11010519491231002X",
    "phone": "13800138000",
    "address": "示范市城东区人民路88号",
}
FINE_YUAN = "20000"  # above the catalog's 10,000 yuan for a person: a major decision
PRE_RECORD_SECONDS = 5.0
# Light enough for a shared laptop; a terminal records 1280x720 (media.edge.config).
RECORDER = RecorderConfig(
    width=640, height=360, preset="ultrafast", pre_record_seconds=PRE_RECORD_SECONDS
)
REMEDIES = {"reconsideration_body": "示范市文化和旅游局", "court": "示范市城东区人民法院"}
CHECKLIST_PASS = {item.key: {"answer": item.pass_answer} for item in CHECKLIST}
PROBLEM = "证据中没有当事人的身份证明，不能确认当事人身份"
SUMMARY_FILE = "tour.json"


class Outcome(msgspec.Struct, kw_only=True):
    """What the tour made, written to ``<data>/demo/tour.json`` for browsing and for its test."""

    server: str
    case_id: str = ""
    recording_id: str = ""
    evidence_id: str = ""
    rights_notice_id: str = ""
    decision_document_id: str = ""
    decision_number: str = ""
    disclosure_record_id: int | None = None
    links: dict[str, str] = msgspec.field(default_factory=dict)


@dataclass
class Tour:
    settings: Settings
    seconds: float
    say: Narrator = field(default_factory=Narrator)
    home: Path = field(init=False)
    server: Server = field(init=False)
    agents: dict[str, Agent] = field(default_factory=dict)
    notes: set[str] = field(default_factory=set)  # sync notes shown once
    staff: dict[str, Staff] = field(default_factory=dict)
    outcome: Outcome = field(init=False)

    def __post_init__(self) -> None:
        self.home = Path(self.settings.data_dir) / "demo"
        self.server = Server(self.settings, choose_port(self.settings), self.home / "server.log")
        self.outcome = Outcome(server=self.server.url)

    # --- helpers --------------------------------------------------------------------------------

    @property
    def case_id(self) -> str:
        return self.outcome.case_id

    def link(self, key: str, label: str, target: str) -> None:
        url = f"{self.server.url}{target}" if target.startswith("/") else target
        self.outcome.links[key] = url
        self.say.link(label, url)

    def user(self, username: str) -> Staff:
        if username not in self.staff:
            self.staff[username] = Staff(self.server.url, username, demo.DEMO_PASSWORD)
        return self.staff[username]

    def case_file(self) -> dict[str, Any]:
        return self.user("admin").call("GET", f"/api/cases/{self.case_id}")

    def case_state(self) -> str:
        return str(self.case_file()["file"]["state"])

    def sync(self, number: str) -> None:
        agent = self.agents[number]
        report = agent.sync()
        self.say.detail(
            f"[{number}] 同步：接受 {report.accepted}，重复 {report.duplicate}，"
            f"退回 {report.rejected}，等待 {report.deferred}"
            + (f"；更新 {'、'.join(report.snapshots)}" if report.snapshots else "")
        )
        for note in report.notes:
            if note not in self.notes:
                self.notes.add(note)
                self.say.detail(f"[{number}] {note}")
        status = agent.status()
        if status.rejected:
            reasons = "；".join(f"{e.kind}: {e.message}" for e in status.rejected_events)
            raise TourFailed(f"the server refused events of terminal {number}: {reasons}")

    def qr_url(self, number: str) -> str:
        """What the officer's card shows in its QR code now (from the batch cached at sync)."""
        url = self.agents[number].wallet.card().url
        if url is None:
            raise TourFailed(f"terminal {number} has no QR code left: its batch ran out")
        return url

    def public(self, url: str, accept: str = "application/json") -> httpx.Response:
        """A GET as anyone's browser or phone makes it: no login."""
        response = httpx.get(url, headers={"Accept": accept}, timeout=30)
        if response.status_code >= 400:
            raise TourFailed(f"GET {url} → {response.status_code} {response.text}")
        return response

    def officer_call(self, number: str, method: str, path: str, body: object = None) -> Any:
        """The officer's own call from his terminal (DPoP-bound token, device proof)."""
        content = None if body is None else msgspec.json.encode(body)
        raw = self.agents[number].session.call(
            lambda client, token: client.request(method, path, token=token, content=content)
        )
        return msgspec.json.decode(raw)

    def pulled_review(self, number: str) -> ReviewOutcomeRef:
        """The review outcome as the terminal's last pull brought it (reference data)."""
        row = self.agents[number].store.one(
            "SELECT body FROM reference WHERE kind = 'review_outcome' AND key = ?", (self.case_id,)
        )
        if row is None:
            raise TourFailed(f"terminal {number} has pulled no review outcome of the case")
        return msgspec.json.decode(row["body"], type=ReviewOutcomeRef)

    # --- the story ------------------------------------------------------------------------------

    def run(self) -> Outcome:
        self.start_server()
        try:
            for chapter in (
                self.terminals,
                self.open_case,
                self.show_credential,
                self.two_officer_check,
                self.record,
                self.upload,
                self.rights_notice,
                self.statement,
                self.propose,
                self.review_returns,
                self.fix_and_approve,
                self.issue_decision,
                self.publish,
                self.revoke,
            ):
                started = time.monotonic()
                chapter()
                self.say.detail(f"({time.monotonic() - started:.1f} s)")
            self.browse()
        finally:
            for agent in self.agents.values():
                agent.close()
            for staff in self.staff.values():
                staff.close()
        return self.outcome

    def start_server(self) -> None:
        say = self.say
        say.title("zhifa 执法终端后台 — a newcomer's tour: one case from the street to the portal")
        info = prepare_database(self.settings)
        shutil.rmtree(self.home, ignore_errors=True)  # fresh terminals every run
        self.home.mkdir(parents=True)
        say.step("The server starts (zhifa serve: uvicorn, one process)")
        database = make_url(self.settings.resolved_database_url)
        say.say(f"database   {database.render_as_string(hide_password=True)}")
        say.say(f"media      {self.settings.resolved_media_dir}/")
        say.say(f"agency     {info.agency}（演示执法主体 demo）, seeded by `zhifa demo seed`")
        say.say(f"server log {self.server.log_path}")
        self.server.start()
        self.link("docs", "API documentation", "/schema")

    def terminals(self) -> None:
        say = self.say
        say.step("Two terminals are enrolled and the officers log in")
        for number, name in ((FIRST, "一号终端"), (SECOND, "二号终端")):
            code = self.user("admin").call("POST", "/api/terminals/enrollment-codes", {})
            agent = Agent(self.home / f"terminal-{number}")
            self.agents[number] = agent
            terminal_id = agent.session.enroll(self.server.url, code["enrollment_code"], name)
            agent.login(number, demo.DEMO_PASSWORD)
            card = agent.wallet.card()
            say.say(
                f"{name} {terminal_id} ({agent.home}): {card.name}（证号 {card.number}，"
                f"{card.unit}）logged in; the login synced the roster, the catalog, the "
                f"calendar, QR codes valid offline until {card.batch_ends_at.astimezone(CHINA_TZ):%m-%d %H:%M}（北京时间）"
            )
        say.detail(
            f"the same by hand: zhifa-edge --home {self.agents[FIRST].home} enroll "
            f"{self.server.url} CODE; zhifa-edge --home … login {FIRST}"
        )

    def open_case(self) -> None:
        say, agent = self.say, self.agents[FIRST]
        say.step("张明 opens a case (立案) and identifies the party (当事人)")
        opened = agent.desk.open_case(
            item_code=ITEM,
            region=REGION,
            title="某歌舞厅未经许可擅自从事娱乐场所经营活动案",
            partners=[SECOND],
            place=PLACE,
            summary="群众举报：人民路88号歌舞厅未取得娱乐经营许可证营业",
        )
        self.outcome.case_id = str(opened.case_id)
        agent.desk.record(
            self.case_id, "party_identified", {"party_id": uuid.uuid4(), "party": PARTY}
        )
        item = agent.desk.item(ITEM)
        say.say(f"case {self.case_id}: {item.name}（{item.category}，{item.act_kind}）")
        say.say(f"party: {PARTY['name']}, ID {PARTY['id_number']} (never shown to the public)")
        self.sync(FIRST)
        say.say(f"on the server the case is 「{self.case_state()}」")
        self.link("case", "case file (API, reviewer/admin)", f"/api/cases/{self.case_id}")
        self.link("console_case", "case in the console", f"/console/cases/{self.case_id}")

    def show_credential(self) -> None:
        say, agent = self.say, self.agents[FIRST]
        say.step("亮证: 张明 shows his e-credential; the party scans it with a phone")
        card, url = agent.wallet.card(), self.qr_url(FIRST)
        for line in card_lines(card):
            say.detail(line)
        say.detail(qr_text(url))
        png = self.home / f"qr-{FIRST}.png"
        png.write_bytes(qr_png(url))
        decoded = [b.text for b in zxingcpp.read_barcodes(Image.open(png))]
        if decoded != [url]:
            raise TourFailed(f"the QR code decoded as {decoded}, not {url}")
        say.say(f"QR rendered with segno ({png}), decoded with zxing-cpp: {url}")
        page = self.public(url, "text/html")
        title = re.search(r"<title>(.*?)</title>", page.text, re.S)
        say.say(
            f"the phone opens it (Accept: text/html): {page.status_code}, "
            f"「{title.group(1).strip() if title else '?'}」"
        )
        view = self.public(url).json()
        say.say(
            f"as JSON: {view['name']} {view['credential_number']} {view['agency']}，"
            f"状态 {view['status']}，code valid until {view['code_expires_at']}"
        )
        self.link("qr", "what the party's phone shows", url)
        scans = self._wait_for_scans()
        say.say(f"the server recorded the scan as 亮证 on the open case ({scans} scan event(s))")

    def _wait_for_scans(self) -> int:
        """The scan is written after the page was answered: wait for it to reach the case."""
        for _ in range(300):
            timeline = self.case_file()["timeline"]
            scans = [
                e for e in timeline if e["kind"] == "credential_shown" and e["event"].get("scanned")
            ]
            if scans:
                return len(scans)
            time.sleep(0.1)
        raise TourFailed("the party's scan did not reach the case file")

    def two_officer_check(self) -> None:
        say, first = self.say, self.agents[FIRST]
        say.step("The two-officer check (行政处罚法 第42条): each scans the other's QR, offline")
        try:
            first.desk.record(self.case_id, "inspection_recorded", {"findings": "现场检查"})
        except PartnerCheckRequired as refused:
            say.say(f"before it, the terminal refuses the inspection: {refused.message}")
        else:
            raise TourFailed("the two-officer gate let an unchecked inspection through")
        self.sync(SECOND)  # 李华's terminal learns of the case
        for checker, partner in ((FIRST, SECOND), (SECOND, FIRST)):
            result = self.agents[checker].wallet.check_partner(self.qr_url(partner), self.case_id)
            if result.verdict != "valid" or result.card is None:
                reasons = "；".join(f.message for f in result.findings)
                raise TourFailed(f"partner check failed: {result.verdict_label} {reasons}")
            say.say(
                f"{self.agents[checker].wallet.card().name} checks {result.card.name}（{result.card.number}）"
                f"against the cached keys and status list: {result.verdict_label}; "
                f"{len(result.recorded)} 亮证 check(s) recorded in the case"
            )

    def record(self) -> None:
        say, agent = self.say, self.agents[FIRST]
        say.step(
            f"执法记录: a {self.seconds:g} s recording with a {PRE_RECORD_SECONDS:g} s pre-record buffer"
        )
        recordings = Recordings(agent.home, agent.session, agent.desk)
        media = open_source("synthetic", RECORDER, pace=1.0)
        recorder = recordings.recorder(RECORDER, epoch=media.epoch)
        take = Take(
            case_id=self.case_id,
            officers=[FIRST, SECOND],
            position=parse_gps("39.9087,116.3975,8", agent.desk.clock()),
            seconds=self.seconds,
            press_after=PRE_RECORD_SECONDS,  # record is pressed once the ring is full
        )
        say.say(
            f"standby: the recorder keeps the last {PRE_RECORD_SECONDS:g} s "
            f"({RECORDER.width}x{RECORDER.height}, synthetic picture and tone, time, "
            f"terminal and 证号 burnt in); then record is pressed …"
        )
        started = time.monotonic()
        with recorder:
            result = capture(
                recordings,
                recorder,
                media.frames(),
                take,
                stop=threading.Event(),
                pressed=threading.Event(),
            )
        self.outcome.recording_id = result.recording_id
        (line,) = [r for r in recordings.lines() if r.recording_id == result.recording_id]
        chain = RecordingDir(recordings.root / result.recording_id).load_chain()
        say.say(
            f"recording {result.recording_id}: {result.seconds:g} s of media "
            f"(pre-record included), {line.size:,} bytes in {len(chain.segments)} segments, "
            f"{time.monotonic() - started:.0f} s wall; "
            f"stopped: {STOP_LABELS.get(result.stop_reason, result.stop_reason)}; 「{line.label}」"
        )
        say.detail(
            "each segment's SHA-256 is chained to the previous one; the head is signed by the device key"
        )
        agent.desk.record(
            self.case_id,
            "inspection_recorded",
            {
                "place": PLACE,
                "findings": "经现场检查，当事人未取得娱乐经营许可证，在人民路88号经营歌舞娱乐场所，"
                "现场有包厢6间、顾客12人。",
                "recording_ids": [result.recording_id],
            },
        )
        say.say("现场检查 recorded, linked to the recording (证据 attached to the case too)")

    def upload(self) -> None:
        say, agent = self.say, self.agents[FIRST]
        say.step("The recording goes up (tus, SHA-256 per chunk) and the server dies half-way")
        recordings = Recordings(agent.home, agent.session, agent.desk)
        (line,) = [r for r in recordings.lines() if r.recording_id == self.outcome.recording_id]
        chunk = max(16 * 1024, line.size // 10)
        killed_at: list[int] = []

        def until_half(recording_id: str, offset: int, size: int) -> None:
            say.detail(f"{offset:>12,} / {size:,} bytes acknowledged")
            if not killed_at and offset * 2 >= size:
                killed_at.append(offset)
                self.server.kill()
                say.say(f"✗ server killed with SIGKILL at {offset * 100 // size}%")

        (cut,) = recordings.upload_all(progress=until_half, stall_seconds=3, chunk_size=chunk)
        if cut.state != "interrupted":
            raise TourFailed(f"the upload was not interrupted: {outcome_text(cut)}")
        say.say(f"the terminal gives up for now: {cut.message}")
        (line,) = [r for r in recordings.lines() if r.recording_id == self.outcome.recording_id]
        say.say(f"its list shows 「{line.label}」; the server restarts …")
        self.server.start()
        resumed: list[int] = []

        def after_restart(recording_id: str, offset: int, size: int) -> None:
            if not resumed:
                resumed.append(offset)
                # The first chunk after the restart starts where the server had committed.
                twice = offset != min(killed_at[0] + chunk, size)
                say.say(
                    f"the uploader asks the server for its offset (tus HEAD) and goes on from "
                    f"{killed_at[0]:,}"
                    + (" (some bytes sent again)" if twice else ": nothing sent twice")
                )
            say.detail(f"{offset:>12,} / {size:,} bytes acknowledged")

        (done,) = recordings.upload_all(progress=after_restart, chunk_size=chunk)
        if done.state != "sealed" or done.evidence_id is None:
            raise TourFailed(f"the recording was not sealed: {outcome_text(done)}")
        self.outcome.evidence_id = done.evidence_id
        say.say(
            "sealed: the server checked the whole file's SHA-256, the signed chain and every "
            "keyframe (PyAV), made it write-once and wrote the ledger entry"
        )
        say.say(outcome_text(done))
        sealed = self.user("admin").call("GET", f"/api/media/evidence/{done.evidence_id}")
        say.say(
            f"evidence: {sealed['container']} {sealed['video_codec']}/{sealed['audio_codec']} "
            f"{sealed['width']}x{sealed['height']}, {sealed['duration_s']:g} s, "
            f"{sealed['segments']} segments, sealed ({sealed['seal_enforced_by']}), kept until "
            f"{sealed['retain_until'][:10]}, permanently once used as evidence"
        )
        self.sync(FIRST)  # the checks, the evidence and the inspection reach the case
        self.link(
            "evidence",
            "evidence item (API, reviewer/admin)",
            f"/api/media/evidence/{done.evidence_id}",
        )

    def rights_notice(self) -> None:
        say, agent = self.say, self.agents[FIRST]
        say.step("权利告知书: the rights notice is made offline on the terminal and served")
        facts = {
            "grounds": "《娱乐场所管理条例》第九条第一款",
            "penalties": [{"kind": "罚款", "amount_yuan": FINE_YUAN}],
            "remedies": REMEDIES,
        }
        made = agent.papers.generate("rights_notice", self.case_id, facts)
        doc = made.document
        self.outcome.rights_notice_id = doc.id
        say.say(f"《{doc.title}》{doc.number}, PDF {doc.pdf_path}")
        for text in made.text.splitlines()[:6]:
            say.detail(text)
        say.detail("…")
        if "听证" in made.text:
            say.say("a fine of 20,000 yuan carries the hearing right (第63条): the notice says so")
        agent.papers.serve(doc.id, signature=self.signature())
        say.say(f"served: {PARTY['name']} signs on the screen (直接送达)")
        self.sync(FIRST)
        genuine = self.public(f"{self.server.url}/d/{doc.id}").json()
        say.say(
            f"the server re-rendered and registered it: 「{genuine['status']}」; case 「{self.case_state()}」"
        )
        self.link("rights_notice", "the notice's verification page (its QR)", f"/d/{doc.id}")

    def signature(self) -> bytes:
        image = Image.new("L", (240, 80), 255)
        draw = ImageDraw.Draw(image)
        draw.line([(20, 60), (60, 20), (90, 55), (130, 25), (170, 50), (220, 30)], fill=0, width=4)
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        return buffer.getvalue()

    def statement(self) -> None:
        say, agent = self.say, self.agents[SECOND]
        say.step("陈述、申辩: 李华 receives the party's written statement on the second terminal")
        self.sync(SECOND)
        agent.desk.record(
            self.case_id,
            "statement_received",
            {
                "content": "对违法事实无异议，请求从轻处罚；书面放弃陈述、申辩和听证的权利。",
                "waived": True,
                "in_writing": True,
            },
        )
        say.say(
            "the party waives the rest of the period and the hearing in writing, so the decision "
            "need not wait 5 working days (a spoken waiver would be refused)"
        )
        self.sync(SECOND)

    def propose(self) -> None:
        say, agent = self.say, self.agents[FIRST]
        say.step(
            f"张明 proposes a fine of {int(FINE_YUAN):,} yuan: routed to legal review (法制审核)"
        )
        agent.desk.record(
            self.case_id,
            "decision_proposed",
            {
                "penalties": ["罚款"],
                "fine_yuan": FINE_YUAN,
                "facts": "当事人未取得娱乐经营许可证，擅自从事歌舞娱乐场所经营活动",
                "legal_basis": "《娱乐场所管理条例》第四十一条",
            },
        )
        self.sync(FIRST)
        routed = self.officer_call(FIRST, "GET", f"/api/review/cases/{self.case_id}")
        if not routed["major"]:
            raise TourFailed(f"the proposal was not routed as major: {routed}")
        for match in routed["matches"]:
            say.say(
                f"major decision (重大执法决定): {match['label']} — {match['detail']} {match['basis']}"
            )
        say.say(
            f"review 「{routed['state']}」 (catalog {routed['catalog_version']}); case 「{self.case_state()}」"
        )
        self.link("review", "review record (API)", f"/api/review/cases/{self.case_id}")

    def review_returns(self) -> None:
        say = self.say
        say.step("The handler submits; the reviewer returns it with a problem (存在问题)")
        path = f"/api/review/cases/{self.case_id}"
        submitted = self.officer_call(FIRST, "POST", f"{path}/submissions", {"note": "请予审核"})
        say.say(f"张明 submits from his terminal: 「{submitted['state']}」")
        reviewer = self.user("reviewer")
        reviewer.call("POST", f"{path}/take")
        checklist = {
            **CHECKLIST_PASS,
            "facts": {"answer": CHECK_ITEMS["facts"].fail_answer, "note": PROBLEM},
        }
        returned = reviewer.call(
            "POST",
            f"{path}/opinion",
            {
                "outcome": "存在问题",
                "opinion": "请补充当事人身份证明后重新送审",
                "problems": [{"item": "facts", "text": PROBLEM}],
                "checklist": checklist,
            },
        )
        say.say(f"法制审核员 周敏 takes it and answers the checklist: 「{returned['state']}」")
        self.sync(FIRST)
        pulled = self.pulled_review(FIRST)
        say.say(
            f"张明's terminal pulled the outcome at its sync: 「{pulled.state}」 round {pulled.round}: "
            f"{'；'.join(pulled.problems)}"
        )
        self.link(
            "console_review",
            "the review in the console (reviewer)",
            f"/console/cases/{self.case_id}",
        )

    def fix_and_approve(self) -> None:
        say, agent = self.say, self.agents[SECOND]
        say.step("Fixed on the terminal, resubmitted, approved (同意)")
        agent.desk.record(
            self.case_id,
            "evidence_attached",
            {
                "evidence_id": uuid.uuid4(),
                "evidence_kind": "书证",
                "description": "当事人张三居民身份证复印件（经本人签字确认）",
            },
        )
        say.say("李华 adds the party's ID card copy as 书证")
        self.sync(SECOND)
        path = f"/api/review/cases/{self.case_id}"
        submitted = self.officer_call(
            FIRST, "POST", f"{path}/submissions", {"note": "已补充当事人身份证明"}
        )
        say.say(f"张明 resubmits: round {len(submitted['rounds'])}, 「{submitted['state']}」")
        reviewer = self.user("reviewer")
        if submitted["state"] == "待审核":
            reviewer.call("POST", f"{path}/take")
        approved = reviewer.call(
            "POST",
            f"{path}/opinion",
            {"outcome": "同意", "opinion": "同意作出处罚决定", "checklist": CHECKLIST_PASS},
        )
        if approved["state"] != "审核通过":
            raise TourFailed(f"the review did not pass: {approved['state']}")
        say.say(f"the reviewer agrees: 「{approved['state']}」")

    def issue_decision(self) -> None:
        say, agent = self.say, self.agents[FIRST]
        say.step("行政处罚决定书: the decision is made on the terminal and served")
        self.sync(FIRST)
        pulled = self.pulled_review(FIRST)
        say.say(
            f"the pulled outcome says 「{pulled.state}」"
            + ("; the decision may be printed and served" if pulled.allowed else "")
        )
        notice = agent.papers.document(self.outcome.rights_notice_id)
        made = agent.papers.generate(
            "penalty_decision",
            self.case_id,
            {
                "grounds": "《娱乐场所管理条例》第九条第一款",
                "remedies": REMEDIES,
                "payment": {
                    "bank": "示范市农商银行城东支行",
                    "account_name": "示范市财政局非税收入专户",
                    "account_number": "6228480000000000000",
                },
                "notice": {
                    "number": notice.number,
                    "served_on": china_today(
                        dt.datetime.fromisoformat(notice.created_at)
                    ).isoformat(),
                },
                "statement": {
                    "summary": "当事人对违法事实无异议，请求从轻处罚",
                    "waived_in_writing": True,
                    "hearing_waived_in_writing": True,
                },
            },
        )
        doc = made.document
        self.outcome.decision_document_id = doc.id
        self.outcome.decision_number = doc.number
        say.say(f"《{doc.title}》{doc.number}, PDF {doc.pdf_path}")
        for text in made.text.splitlines()[:6]:
            say.detail(text)
        say.detail("…")
        agent.papers.serve(doc.id, signature=self.signature())
        say.say(
            "served with the party's signature; the server's issue gate checks the review passed"
        )
        self.sync(FIRST)
        say.say(f"case 「{self.case_state()}」")
        self.link("decision", "the decision's verification page", f"/d/{doc.id}")

    def disclosure(self) -> dict[str, Any]:
        listed = self.user("admin").call(
            "GET", "/api/disclosure/decisions", params={"agency_code": demo.AGENCY_CODE}
        )
        for item in listed["items"]:
            if item["case_id"] == self.case_id:
                return item
        raise TourFailed("the served decision was not scheduled for disclosure")

    def publish(self) -> None:
        say = self.say
        say.step("公示: the decision is published on the portal within its window")
        scheduled = self.disclosure()
        say.say(
            f"disclosure 「{DISCLOSURE_LABELS[scheduled['state']]}」: decided "
            f"{scheduled['decision_date']}, publish on {scheduled['publish_on']}, "
            f"due by {scheduled['due_on']} (7 working days for 行政处罚)"
        )
        report = run_disclosure_job(self.settings)
        say.say(
            "the disclosure job runs once (the server runs it every minute too): "
            + (
                f"published {report.published}"
                if report.published
                else "the server's run was first"
            )
        )
        published = self.disclosure()
        for _ in range(50):  # skipped: the server's own run holds the job's lease just now
            if published["state"] != "scheduled" or report.published:
                break
            time.sleep(0.2)
            published = self.disclosure()
        if published["state"] != "published":
            raise TourFailed(f"not published: {published['state']} {published['hold_reason']}")
        record_id = published["record_id"]
        self.outcome.disclosure_record_id = record_id
        public = self.public(f"{self.server.url}/api/gongshi/decisions/{record_id}").json()
        say.say(
            f"「{DISCLOSURE_LABELS[published['state']]}」: {public['decision_number']} — "
            f"{public['subject']}: {public['conclusion']} (redacted: 张三 → 张某, no ID number)"
        )
        self.link("portal_decision", "on the portal", f"/gongshi/decisions/{record_id}")

    def revoke(self) -> None:
        say = self.say
        say.step("The agency revokes the decision (撤销): withdrawn from the portal with a notice")
        change = self.user("admin").call(
            "POST",
            f"/api/cases/{self.case_id}/decision-changes",
            {"change": "撤销", "reason": "经复查，本机关认定事实不清，决定撤销", "via": "本机关"},
        )
        say.say(f"admin records 撤销 of {change['decision_number']}")
        withdrawn = self.disclosure()
        if withdrawn["state"] != "withdrawn":
            raise TourFailed(f"not withdrawn: {withdrawn['state']}")
        notices = self.public(f"{self.server.url}/api/gongshi/withdrawals").json()["items"]
        notice = next(n for n in notices if n["decision_number"] == self.outcome.decision_number)
        say.say(
            f"disclosure 「{DISCLOSURE_LABELS[withdrawn['state']]}」 at once (the law allows 3 "
            f"working days); public notice of {notice['withdrawal']['withdrawn_on']}: "
            f"{notice['withdrawal']['change']}，{notice['withdrawal']['reason']}"
        )
        self.link("portal_withdrawals", "withdrawal notices", "/gongshi/withdrawals")

    def browse(self) -> None:
        say = self.say
        say.step("Everything stays browsable")
        head = self.public(f"{self.server.url}/api/ledger/head").json()
        say.say(f"the ledger holds {head['tree_size']} signed entries (check: zhifa ledger verify)")
        self.link(
            "console",
            f"console (reviewer or admin, password {demo.DEMO_PASSWORD})",
            "/console/login",
        )
        self.link("portal", "public portal", "/gongshi/")
        self.link("ledger", "signed tree head", "/api/ledger/head")
        for number, agent in self.agents.items():
            say.say(
                f"terminal {number}: .venv/bin/zhifa-edge --home {agent.home} status | recordings | documents | card --once"
            )
        summary = self.home / SUMMARY_FILE
        summary.write_bytes(msgspec.json.format(msgspec.json.encode(self.outcome), indent=2))
        say.say(f"what the tour made: {summary}")


def run_disclosure_job(settings: Settings) -> JobReport:
    """One round of the disclosure jobs, with the wiring the server gives them (the review gate)."""

    async def work() -> JobReport:
        context = AppContext(settings)
        try:
            return await run_due_jobs(context, wire(context).disclosure, holder="tour")
        finally:
            await context.close()

    return asyncio.run(work())
