"Pytest settings of the browser tests: each test's call result on its item, so a fixture can tell that the test failed"
import pytest

@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.when == 'call': item.rep_call = rep
