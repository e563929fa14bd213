"""The smallest DAG a GitLab job might trigger: two tasks, one after the other (tests/test_airflow.py)."""

from __future__ import annotations

from datetime import datetime

from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import DAG

with DAG("gitlab_handoff", schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
    BashOperator(task_id="extract", bash_command="true") >> BashOperator(task_id="load", bash_command="true")
