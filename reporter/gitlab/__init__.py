"""Reading GitLab: http (the client, its session, origin guard and waits), pager (one listing's
pages), read (a pipeline, its tests, logs and downstream pipelines), parse (GitLab's JSON into the
snapshot), errors (one error type for reads, one table of what to tell the user)."""
