"""Opens our HTML pages in headless Chromium (Debian's package, through chromedriver and the
pinned selenium), with every network request blocked, and reports what a person would see:
failed requests, console errors, the charts and the values marked ``data-key``.

Screenshots go to ``outputs/browser/`` (gitignored) for a person to look at.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import pathlib
import shutil
from typing import Dict, Iterator, List

CHROMIUM, CHROMEDRIVER = '/usr/bin/chromium', '/usr/bin/chromedriver'
SCREENSHOTS = pathlib.Path(__file__).resolve().parents[1] / 'outputs' / 'browser'

_CHARTS_JS = """
return Array.from(document.querySelectorAll('svg.chart')).map(svg => {
  const box = svg.getBoundingClientRect();
  const marks = Array.from(svg.querySelectorAll('.mark')).filter(m => {
    const b = m.getBoundingClientRect(); return b.width > 0 || b.height > 0; });
  return {name: svg.dataset.chart, width: box.width, height: box.height, marks: marks.length};
});
"""
_VALUES_JS = """
const out = {};
document.querySelectorAll('[data-key]').forEach(e => { out[e.dataset.key] = e.textContent.trim(); });
return out;
"""


@dataclasses.dataclass
class PageView:
  """What the browser saw on one page."""
  url: str
  title: str
  text: str
  charts: List[Dict]
  values: Dict[str, str]
  links: List[str]
  failed_requests: List[str]
  console_errors: List[str]
  screenshot: pathlib.Path
  widths: Dict[str, int] = dataclasses.field(default_factory=dict)  # body scrollWidth, window

  def chart(self, name: str) -> Dict:
    found = [c for c in self.charts if c['name'] == name]
    assert found, f'no chart {name!r} on {self.url}; charts: {[c["name"] for c in self.charts]}'
    return found[0]


def available() -> bool:
  return bool(shutil.which(CHROMIUM) or shutil.which('chromium')) and bool(
      shutil.which(CHROMEDRIVER) or shutil.which('chromedriver'))


@contextlib.contextmanager
def browser() -> Iterator['Browser']:
  """One headless Chromium for a test session, offline."""
  assert available(), ('Chromium and chromedriver are needed (Debian: apt-get install -y chromium '
                       'chromium-driver; scripts/install.sh does it)')
  from selenium import webdriver
  from selenium.webdriver.chrome.service import Service
  options = webdriver.ChromeOptions()
  options.binary_location = shutil.which(CHROMIUM) or shutil.which('chromium')
  for flag in ('--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage',
               '--window-size=1200,1600', '--allow-file-access-from-files'):
    options.add_argument(flag)
  options.set_capability('goog:loggingPrefs', {'browser': 'ALL', 'performance': 'ALL'})
  driver = webdriver.Chrome(service=Service(shutil.which(CHROMEDRIVER) or 'chromedriver'),
                            options=options)
  try:
    driver.execute_cdp_cmd('Network.enable', {})
    driver.execute_cdp_cmd('Network.setBlockedURLs', {'urls': ['http://*', 'https://*', 'ws://*',
                                                               'wss://*', 'ftp://*']})
    driver.execute_cdp_cmd('Network.emulateNetworkConditions', {
        'offline': True, 'latency': 0, 'downloadThroughput': -1, 'uploadThroughput': -1})
    yield Browser(driver)
  finally:
    driver.quit()


class Browser:
  def __init__(self, driver):
    self._driver = driver

  def open(self, path: pathlib.Path, shot: str) -> PageView:
    """Loads ``path`` (file://), waits for it, screenshots it, and reads what it shows."""
    driver = self._driver
    driver.get_log('performance')  # drop earlier pages' events
    driver.get_log('browser')
    driver.get(path.resolve().as_uri())
    driver.execute_script('return document.readyState')
    failed, requested = [], {}
    for entry in driver.get_log('performance'):
      message = json.loads(entry['message'])['message']
      params = message.get('params', {})
      if message['method'] == 'Network.requestWillBeSent':
        requested[params['requestId']] = params['request']['url']
      elif message['method'] == 'Network.loadingFailed':
        failed.append(f"{requested.get(params['requestId'], '?')}: {params.get('errorText')}"
                      f" {params.get('blockedReason', '')}")
    errors = [e['message'] for e in driver.get_log('browser') if e['level'] == 'SEVERE']
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    screenshot = SCREENSHOTS / f'{shot}.png'
    height = driver.execute_script('return document.documentElement.scrollHeight')
    driver.execute_cdp_cmd('Emulation.setDeviceMetricsOverride', {  # the whole page, not the window
        'width': 1200, 'height': min(max(height, 600), 8000), 'deviceScaleFactor': 1,
        'mobile': False})
    driver.save_screenshot(str(screenshot))
    driver.execute_cdp_cmd('Emulation.clearDeviceMetricsOverride', {})
    widths = driver.execute_script(
        'return {body: document.body.scrollWidth, document: document.documentElement.scrollWidth,'
        ' window: window.innerWidth}')
    return PageView(
        url=driver.current_url, title=driver.title,
        text=driver.execute_script('return document.body.innerText'),
        charts=driver.execute_script(_CHARTS_JS), values=driver.execute_script(_VALUES_JS),
        links=driver.execute_script(
            "return Array.from(document.querySelectorAll('a[href]')).map(a => a.getAttribute('href'))"),
        failed_requests=failed, console_errors=errors, screenshot=screenshot, widths=widths)


def assert_clean(view: PageView, charts: List[str]) -> None:
  """No failed request, no console error, each named chart present and drawn, links relative."""
  assert view.failed_requests == [], view.failed_requests
  assert view.console_errors == [], view.console_errors
  for name in charts:
    chart = view.chart(name)
    assert chart['width'] > 50 and chart['height'] > 20, chart
    assert chart['marks'] > 0, f'chart {name} is blank on {view.url}'
  for link in view.links:
    assert '://' not in link and not link.startswith('/'), f'absolute link {link} on {view.url}'
  for repr_like in ("{'", "'}", "['", "']", 'True', 'False', 'None'):
    assert repr_like not in view.text, f'{repr_like!r} (a Python repr) shown on {view.url}'
