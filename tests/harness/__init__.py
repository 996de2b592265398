"""Tests of the build-test-deploy harness (a package, so its conftest is `harness.conftest`)."""
