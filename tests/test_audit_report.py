"""Audit records round-trip through Redis; the HTML report opens in chromium with every image loaded."""

import json

import numpy as np
from PIL import Image

from anonreid.models.evaluation.privacy_policy import PrivacyPolicy, compute_verdicts
from anonreid.nodes.adversary.report import ReportData, write_report
from anonreid.orchestration.infra.audit_log import AuditLog, make_record
from anonreid.proto.v1 import audit_pb2


def _png(seed: int) -> bytes:
    import io

    arr = (np.random.default_rng(seed).random((60, 160)) * 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def _records():
    out = []
    for i in range(4):
        for cam in ("cam1", "cam2"):
            # chance = the flat-grey floor, 0.40: cam2 breaches the default floor + 0.05 SSIM rule
            ssim = 0.30 + 0.01 * i if cam == "cam1" else 0.50
            out.append(make_record("reconstruction", cam, "ssim", ssim, 0.40, (ssim - 0.02, ssim + 0.02),
                                   (i * 1_000_000, (i + 1) * 1_000_000), 64, "an-1/rec-1", True, 12, "cluster bootstrap"))
            # rank-1 0.1 of 11 queries: the Clopper–Pearson interval reaches far over chance + 5 points
            out.append(make_record("retrieval", cam, "rank1", 0.1, 0.09, (0.002, 0.41),
                                   (i * 1_000_000, (i + 1) * 1_000_000), 11, "an-1/app-1", False, 11, "clopper-pearson"))
    return out


ATTACKERS = [{"name": "e_rec", "role": "reconstruction", "checkpoint": "/w/e_rec", "trained_on": "raw",
              "budget": {"steps": 300, "batch_size": 8, "samples": 2400, "unit": "clips", "source": "run config (rec)"}}]


def test_audit_log_round_trip(redis_service):
    log = AuditLog(redis_service.client())
    records = _records()
    for r in records:
        log.append(r)
    back = log.records()
    assert [r.record_id for r in back] == [r.record_id for r in records]
    assert log.records(since_us=records[-1].created_at_us)[-1] == records[-1]
    alert = audit_pb2.PrivacyAlert(record=records[1], threshold=0.4, comparison="<=", message="m")
    log.alert(alert)
    assert log.alerts() == [alert]
    assert log.attackers() == []
    log.set_attackers(ATTACKERS)
    assert log.attackers() == ATTACKERS


def test_verdicts_and_unchecked():
    policy = PrivacyPolicy.load()
    verdicts = compute_verdicts(_records(), policy, ["cam1", "cam2"], ground_truth_available=True)
    by = {(v.camera, v.attack, v.metric): v for v in verdicts}
    assert by[("cam1", "reconstruction", "ssim")].status == "pass"
    assert by[("cam2", "reconstruction", "ssim")].status == "breach"
    # the point estimate 0.10 is under chance + 5 points, but 11 queries cannot show it: no pass
    rank1 = by[("cam1", "retrieval", "rank1")]
    assert rank1.status == "insufficient evidence" and "11 queries cannot bound rank-1" in rank1.reason
    assert rank1.ci == (0.002, 0.41) and rank1.num_identities == 11 and rank1.interval_method == "clopper-pearson"
    assert by[("cam1", "inversion", "rank1")].status == "not checked"
    no_gt = compute_verdicts([], policy, ["cam3"], ground_truth_available=False)
    assert any("needs ground truth" in v.reason for v in no_gt if v.metric == "ssim")


def test_report_opens_in_chromium_with_images(tmp_path, browser_page):
    records = _records()
    policy = PrivacyPolicy.load()
    data = ReportData(["cam1", "cam2"], compute_verdicts(records, policy, ["cam1", "cam2"]), records, [],
                      grids={"cam1": _png(1), "cam2": _png(2)}, attackers=ATTACKERS)
    html_path, json_path = write_report(data, tmp_path / "report")
    summary = json.loads(json_path.read_text())
    assert summary["overall"] == "breach" and summary["attackers"] == ATTACKERS
    browser_page.goto(html_path.as_uri())
    assert "BREACH" in browser_page.inner_text("#overall")
    images = browser_page.eval_on_selector_all("img", "els => els.map(e => [e.complete, e.naturalWidth])")
    assert len(images) >= 4  # two trend plots + two grids
    assert all(complete and width > 0 for complete, width in images)
    assert browser_page.locator("#verdicts tr.breach").count() == 1
    assert browser_page.locator("#verdicts tr.insufficient-evidence").count() == 2
    assert "300 steps x batch 8 = 2400 clips" in browser_page.inner_text("#attackers")


def test_overall_status_orders_the_three_states():
    from anonreid.models.evaluation.privacy_policy import Verdict, overall_status

    def v(status: str) -> Verdict:
        return Verdict("cam1", "retrieval", "rank1", status)

    assert overall_status([v("pass"), v("insufficient evidence"), v("breach")]) == "breach"
    assert overall_status([v("pass"), v("insufficient evidence"), v("not checked")]) == "insufficient evidence"
    assert overall_status([v("pass"), v("not checked")]) == "pass"
    assert overall_status([v("not checked")]) == "not checked"
