"""Dashboard panels on a replayed store, the HTML dashboard in Chromium, and infra files."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
import urllib.request

import pytest
import yaml

from flows.broker import free_port
from flows.grafana import DATASOURCE, dashboard_json
from flows.panels import load_panels
from operators.errors import ConfigError
from tests.conftest import ROOT, cli, with_outage
from tests.test_semantic_e2e import write

PANELS = [p.name for p in load_panels()]


@pytest.fixture(scope="module")
def replayed(tmp_path_factory):
    """A fleet replay with a 40 s outage of every robot: every panel has something."""
    tmp = tmp_path_factory.mktemp("panels")
    clean = tmp / "clean.jsonl"
    assert cli("simulate", "--out", str(clean), "--events", "24000", "--sources", "20",
               "--rate", "200").returncode == 0  # 120 s of simulated time
    events = [json.loads(line) for line in clean.read_text().splitlines()]
    lines = with_outage(events, lambda source: True, 30_000, 70_000)
    dsn = f"chdb://{tmp}/store"
    result = cli("replay", str(write(tmp / "b.jsonl", lines)), "--store", dsn, "-q")
    assert result.returncode == 0, result.stderr
    return dsn


@pytest.mark.parametrize("name", PANELS)
def test_every_panel_runs_on_a_replayed_store_and_returns_rows(replayed, name):
    result = cli("query", name, "--store", replayed, "--format", "csv")
    assert result.returncode == 0, result.stderr
    header, *rows = result.stdout.strip().splitlines()
    assert rows, f"panel {name} returned no rows"
    assert "," in header or len(rows[0]) > 0


def test_the_dashboard_renders_every_chart_with_data_in_chromium(replayed, tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "the browser test needs Debian's chromium: apt-get install chromium " \
                     "(make test installs it)"
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "flows.cli", "dashboard", "--store",
                               replayed, "--port", str(port)], cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = f"http://127.0.0.1:{port}/"
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(url + "healthz", timeout=2).read()
                break
            except OSError:
                assert server.poll() is None, server.stderr.read() if server.stderr else ""
                assert time.monotonic() < deadline, "the dashboard did not start"
                time.sleep(0.2)
        flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--hide-scrollbars", f"--user-data-dir={tmp_path / 'profile'}"]
        dom = subprocess.run([chromium, *flags, "--dump-dom", url], capture_output=True,
                             text=True, timeout=120).stdout
        shot = tmp_path / "dashboard.png"
        subprocess.run([chromium, *flags, f"--screenshot={shot}", "--window-size=1400,3000",
                        url], capture_output=True, timeout=120)
    finally:
        server.terminate()
        server.wait(10)
    charts = dict(re.findall(r'class="chart" data-panel="(\w+)" data-points="(\d+)"', dom))
    assert sorted(charts) == sorted(PANELS), "a panel is missing or has no data"
    assert all(int(points) > 0 for points in charts.values()), charts
    assert dom.count("<svg") >= sum(p.chart != "table" for p in load_panels())
    assert shot.is_file() and shot.stat().st_size > 20_000  # a real page, not a blank one


def test_grafana_and_compose_agree_with_the_panel_sql():
    infra = ROOT / "infra"
    committed = json.loads((infra / "grafana" / "lucidstream.json").read_text())
    assert committed == dashboard_json(), "regenerate: python -m flows.grafana > " \
                                          "infra/grafana/lucidstream.json"
    sql = {p.title: p.sql for p in load_panels()}
    assert {p["title"]: p["targets"][0]["rawSql"] for p in committed["panels"]} == sql
    assert {p["datasource"]["uid"] for p in committed["panels"]} == {DATASOURCE["uid"]}

    compose = yaml.safe_load((infra / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"kafka", "clickhouse", "grafana", "worker", "simulator",
            "dashboard"} <= set(services)
    assert "controller" in services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"]  # KRaft
    mounts = " ".join(services["grafana"]["volumes"])
    assert "./grafana/lucidstream.json" in mounts and "./grafana/provisioning" in mounts
    worker = services["worker"]
    assert worker["environment"]["LUCIDSTREAM_STORE"].split("@")[1].startswith(
        "clickhouse:8123")
    assert "kafka:9092" in worker["command"]
    source = yaml.safe_load((infra / "grafana" / "provisioning" / "datasources" /
                             "clickhouse.yaml").read_text())["datasources"][0]
    assert (source["uid"], source["type"]) == (DATASOURCE["uid"], DATASOURCE["type"])
    assert source["jsonData"]["host"] == "clickhouse"
    assert source["jsonData"]["traces"]["defaultTable"] == "otel_traces"
    assert (infra / "Dockerfile").is_file()


def test_off_loopback_the_dashboard_needs_its_token(session_store, tmp_path):
    """Fails when DashboardServer starts off loopback without a token, or serves a
    request without it."""
    from urllib.error import HTTPError
    from urllib.request import HTTPCookieProcessor, Request, build_opener, urlopen

    from flows.dashboard import DashboardServer, load_token

    with pytest.raises(ConfigError, match="LUCIDSTREAM_TOKEN"):
        DashboardServer(session_store, host="0.0.0.0", port=0)
    token_file = tmp_path / "token"
    token_file.write_text("short")
    with pytest.raises(ConfigError, match="at least 16"):
        load_token(str(token_file))
    token = "0123456789abcdef0123"
    token_file.write_text(token + "\n")
    server = DashboardServer(session_store, host="0.0.0.0", port=0,
                             token=load_token(str(token_file))).start()
    base = f"http://127.0.0.1:{server.httpd.server_address[1]}"
    try:
        assert urlopen(f"{base}/healthz").read() == b"ok"  # probes need no token
        for path in ("/", "/panel/stale_rate.json"):
            with pytest.raises(HTTPError) as refused:
                urlopen(base + path)
            assert refused.value.code == 401
        with pytest.raises(HTTPError) as wrong:
            urlopen(Request(base + "/", headers={"Authorization": "Bearer nope"}))
        assert wrong.value.code == 401
        ok = urlopen(Request(base + "/panel/stale_rate.json",
                             headers={"Authorization": f"Bearer {token}"}))
        assert ok.status == 200
        browser = build_opener(HTTPCookieProcessor())  # ?token= once, then the cookie
        page = browser.open(f"{base}/?token={token}")
        assert page.status == 200 and page.url == base + "/"
        assert browser.open(base + "/").status == 200
    finally:
        server.stop()


def test_grafana_alert_rules_are_the_rules_file_and_run_on_the_wall_clock(store):
    """The provisioned Grafana rules are generated from infra/alerts.yaml (one per rule,
    same threshold and severity), and each one's SQL runs against a real store."""
    import yaml

    from flows.alerts import load_rules
    from flows.grafana import alert_rules_yaml

    committed = (ROOT / "infra" / "grafana" / "provisioning" / "alerting" /
                 "lucidstream.yaml").read_text()
    assert committed == alert_rules_yaml(), "regenerate: python -m flows.grafana --alerts > " \
        "infra/grafana/provisioning/alerting/lucidstream.yaml"
    grafana = yaml.safe_load(committed)["groups"][0]["rules"]
    rules = load_rules()
    assert [g["title"] for g in grafana] == [r.name for r in rules]
    for g, rule in zip(grafana, rules, strict=True):
        assert g["labels"]["severity"] == rule.severity
        assert g["data"][2]["model"]["conditions"][0]["evaluator"]["params"] == [rule.threshold]
        sql = g["data"][0]["model"]["rawSql"]
        assert "{" not in sql  # every parameter replaced
        store.query(sql)  # runs
        assert [r[0] for r in store.query(f"DESCRIBE ({sql})")[1]] == ["key", "value"]
