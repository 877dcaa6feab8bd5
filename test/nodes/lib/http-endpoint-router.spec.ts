/**
 * Regression: a receiver that is the first route of a fresh Express 4 app (Node-RED's httpNode before any
 * other HTTP node started) must mount and unmount; Express 4's `app.router` getter throws.
 */
import { strict as assert } from 'node:assert';
import express from 'express';
import supertest from 'supertest';
import { mountEndpoint } from '../../../src/nodes/lib/http-endpoint';

describe('nodes/lib/http-endpoint on a fresh Express app', () => {
  it('mounts as the first route and removes it on close', async () => {
    const app = express();
    const ep = mountEndpoint(app as any, {}, 'node-1', ['/first-route'], {
      post: (_req, res) => res.end('ok'),
      get: (_req, res) => res.end('ready'),
    });
    assert.equal((await supertest(app).post('/first-route').send('x').expect(200)).text, 'ok');
    assert.equal((await supertest(app).get('/first-route').expect(200)).text, 'ready');
    ep.close();
    await supertest(app).post('/first-route').send('x').expect(404);
  });
});
