"""The supervisor's logger: one name per run, handlers replaced not added, module loggers reach it."""

import logging

import pytest

from supervisor.logfiles import SUPERVISOR_LOGGER, close_logger, supervisor_logger


@pytest.fixture
def run_logger(tmp_path):
    logger = supervisor_logger(tmp_path, 1_000_000, 2, echo=False)
    yield logger
    close_logger(logger)


def test_one_logger_name_however_many_runs(tmp_path, run_logger):
    known = set(logging.root.manager.loggerDict)
    again = supervisor_logger(tmp_path / "again", 1_000_000, 2, echo=True)
    assert again is run_logger and again.name == SUPERVISOR_LOGGER
    assert len(again.handlers) == 2  # the file and the console, not four
    assert set(logging.root.manager.loggerDict) == known


def test_module_loggers_write_to_the_run_file(tmp_path, run_logger):
    logging.getLogger("supervisor.replication").warning("copy of %s failed", "db/tables/t.json")
    run_logger.info("the cluster runs")
    lines = (tmp_path / "supervisor.log").read_text().splitlines()
    assert [line.split(" ", 2)[2] for line in lines] == [
        "WARNING copy of db/tables/t.json failed", "INFO the cluster runs"]


def test_a_closed_run_leaves_the_logger_as_it_found_it(tmp_path):
    logger = supervisor_logger(tmp_path, 1_000_000, 2, echo=False)
    close_logger(logger)
    assert (logger.handlers, logger.propagate, logger.level) == ([], True, logging.NOTSET)
