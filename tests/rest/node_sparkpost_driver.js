// Drives the shim with SparkPost's own Node client (npm `sparkpost` 2.1.4),
// unchanged but for its origin, and prints what the client saw as JSON.
//   node node_sparkpost_driver.js <origin> <api key>
'use strict';

const SparkPost = require('sparkpost');

async function main() {
  const [origin, key] = process.argv.slice(2);
  const client = new SparkPost(key, { origin });
  const window = { from: '2024-05-01T00:00', to: '2024-05-02T00:00' };
  const out = {};

  // Offset form: arrays are joined with commas and URL-encoded by the client.
  const pages = [];
  for (let page = 1; page <= 3; page++) {
    const res = await client.messageEvents.search(
      Object.assign({ events: ['bounce', 'delay'], per_page: 2, page }, window)
    );
    pages.push({
      ids: res.results.map((r) => r.event_id),
      total: res.total_count,
      rels: res.links.map((l) => l.rel),
    });
  }
  out.pages = pages;

  // Cursor form, following links.next through the client.
  const seen = [];
  let cursor = 'initial';
  while (cursor) {
    const res = await client.events.searchMessage(
      Object.assign({ per_page: 2, cursor }, window)
    );
    res.results.forEach((r) => seen.push(r.event_id));
    // The Events API's links is an object; `next` is absent on the last page.
    const next = res.links.next;
    cursor = next ? new URL(next, origin).searchParams.get('cursor') : null;
  }
  out.cursor = seen;

  // Errors reject with SparkPostError carrying statusCode and errors.
  try {
    await client.messageEvents.search({ events: ['nope'] });
  } catch (err) {
    out.error = { statusCode: err.statusCode, errors: err.errors };
  }
  try {
    await new SparkPost('wrong-key', { origin }).messageEvents.search({ per_page: 1 });
  } catch (err) {
    out.unauthorized = { statusCode: err.statusCode, errors: err.errors };
  }
  process.stdout.write(JSON.stringify(out));
}

main().catch((err) => {
  process.stderr.write(String(err && err.stack ? err.stack : err));
  process.exit(1);
});
