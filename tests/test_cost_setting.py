"""--cost-factor and DATABAND_COST_FACTORS reach the events' compute-minute estimate."""

import pipelines
from clirun import env_for, resend


def _tag(event, key):
    return next((t["value"] for t in event["run"]["facets"]["tags"]["tags"] if t["key"] == key), None)


def test_a_cost_factor_flag_and_variable_set_the_estimate(gitlab, databand, workdir):
    pipelines.mixed(gitlab.url).install(gitlab)  # its jobs run on runners tagged "docker"
    assert resend(env_for(gitlab, databand), "--cost-factor", "docker=2").exit_code == 0
    flagged = {e["job"]["name"]: _tag(e, "gitlab.cost_factor") for e in databand.events}
    assert flagged["acme.data-platform.build.compile"] == "2"
    databand.clear_records()
    assert resend(env_for(gitlab, databand, DATABAND_COST_FACTORS="docker=0.5")).exit_code == 0
    varied = {e["job"]["name"]: _tag(e, "gitlab.cost_factor") for e in databand.events}
    assert varied["acme.data-platform.build.compile"] == "0.5"


def test_a_malformed_cost_factor_is_one_line(gitlab, databand, workdir):
    bad = resend(env_for(gitlab, databand), "--cost-factor", "docker")
    assert bad.exit_code == 2 and "--cost-factor" in bad.output and "Traceback" not in bad.output
    bad = resend(env_for(gitlab, databand, DATABAND_COST_FACTORS="docker=lots"))
    assert bad.exit_code == 2 and "DATABAND_COST_FACTORS must be" in bad.stderr
