// Escalation delivery (issue 8, defects 6 and 7): permanent answers are not retried forever, and a
// webhook URL (for Slack-style webhooks the URL is the secret) never appears in a failure message.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { deliverEscalation, EscalationDeliveryError, type EscalationPayload } from '../../src/activities/escalation';
import { WebhookSink } from '../helpers/webhook-sink';

const payload: EscalationPayload = {
  id: 'selfheal/h1/a.service/inc-1/ConsecutiveFailures/1',
  event: 'ConsecutiveFailures',
  host: 'h1',
  service: 'a.service',
  workflowId: 'selfheal/h1/a.service',
  incidentId: 'inc-1',
  consecutiveFailures: 3,
  restartsLastHour: 3,
  message: 'three failures',
  time: new Date().toISOString(),
};

let sink: WebhookSink;
before(async () => {
  sink = await WebhookSink.start();
});
after(() => sink.close());

const hook = (path: string) => ({ url: sink.url.replace('/escalations', path), headers: {}, timeoutMs: 2_000 });

describe('escalation delivery', () => {
  it('gives up at once on a permanent refusal (4xx other than 408/429) and reports it', async () => {
    sink.status = 404;
    const permanent: string[] = [];
    try {
      const r = await deliverEscalation([hook('/gone')], payload, { onPermanentFailure: (url) => permanent.push(url) });
      assert.deepEqual(r.delivered, []);
      assert.equal(r.refused.length, 1);
      assert.match(r.refused[0], /HTTP 404/);
      assert.equal(permanent.length, 1);
    } finally {
      sink.status = 200;
    }
  });

  for (const status of [408, 429, 500, 503]) {
    it(`keeps retrying on HTTP ${status}`, async () => {
      sink.status = status;
      try {
        await assert.rejects(deliverEscalation([hook('/busy')], payload), EscalationDeliveryError);
      } finally {
        sink.status = 200;
      }
    });
  }

  it('never puts the webhook URL (the secret of Slack-style webhooks) in its failure message', async () => {
    const secret = 'T0000/B0000/XXXXsecretXXXX';
    sink.status = 503;
    try {
      await assert.rejects(deliverEscalation([hook(`/services/${secret}`)], payload), (err: Error) => {
        assert.ok(!err.message.includes(secret), err.message);
        assert.ok(!err.message.includes('XXXXsecretXXXX'), err.message);
        assert.match(err.message, /127\.0\.0\.1/, 'still says which receiver');
        return true;
      });
      // Unreachable receiver: the fetch error text must not leak it either.
      await assert.rejects(
        deliverEscalation([{ url: `http://127.0.0.1:9/hooks/${secret}`, headers: {}, timeoutMs: 1_000 }], payload),
        (err: Error) => !err.message.includes(secret),
      );
    } finally {
      sink.status = 200;
    }
  });

  it('delivers to a receiver that accepts', async () => {
    const r = await deliverEscalation([hook('/ok')], payload);
    assert.equal(r.delivered.length, 1);
    assert.ok(sink.events().some((e) => e.service === 'a.service'));
  });
});
