"""Test reports: the result model, JUnit XML in and out, the Markdown summary, the report folder."""
