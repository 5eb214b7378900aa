"""Transcripts: the format (`format`), recording a session redacted (`recorder`, and `proxy`
around another program), replaying one to the driver (`replay`) or on a pty (`replay_pty`),
and reading one as events (`decode`)."""
