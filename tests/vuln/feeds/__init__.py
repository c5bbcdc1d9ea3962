"""Tests of the feed parsers."""
