import { strict as assert } from 'node:assert';
import express from 'express';
import { directRouteBlocker } from '../../src/nodes/lib/direct-route';

describe('nodes/lib/direct-route', () => {
  const standalone = { settingsFile: '/data/settings.js' };
  const editor = () => {
    const app = express();
    app.post('/my-node/:id', (_req, res) => res.end()); // what a node adds with RED.httpAdmin.post
    app.get('/only-get', (_req, res) => res.end());
    return app;
  };

  it('allows answering at the server only when nothing in front of the route could answer or change the POST', () => {
    assert.equal(directRouteBlocker(standalone, editor(), '/cdr'), null);
    assert.equal(directRouteBlocker({ ...standalone, httpServerOptions: { 'x-powered-by': false } }, editor(), '/cdr'), null);
    assert.equal(directRouteBlocker({ ...standalone, httpAdminRoot: '/admin', httpAdminMiddleware: () => undefined }, editor(), '/cdr'), null, 'the editor is elsewhere');
    assert.equal(directRouteBlocker({ ...standalone, httpAdminRoot: false }, null, '/flows'), null);
    assert.equal(directRouteBlocker(standalone, editor(), '/only-get'), null);
  });

  for (const [why, settings, path, reason] of [
    ['embedded in another application', {}, '/cdr', /embedded/],
    ['turned off', { ...standalone, cdrflowDirectRoutes: false }, '/cdr', /cdrflowDirectRoutes/],
    ['httpNodeAuth', { ...standalone, httpNodeAuth: { user: 'u', pass: 'x' } }, '/cdr', /httpNodeAuth/],
    ['the old httpAuth', { ...standalone, httpAuth: { user: 'u', pass: 'x' } }, '/cdr', /httpNodeAuth/],
    ['httpNodeMiddleware', { ...standalone, httpNodeMiddleware: () => undefined }, '/cdr', /httpNodeMiddleware/],
    ['trust proxy (changes the sender address)', { ...standalone, httpServerOptions: { 'trust proxy': true } }, '/cdr', /trust proxy/],
    ['httpAdminMiddleware in front of the path', { ...standalone, httpAdminMiddleware: () => undefined }, '/cdr', /httpAdminMiddleware/],
    ['httpAdminCors in front of the path', { ...standalone, httpAdminRoot: '/x', httpAdminCors: { origin: '*' } }, '/x/cdr', /httpAdminCors/],
    ['an editor route', standalone, '/flows', /editor has routes under \/flows/],
    ['an editor route under its root', { ...standalone, httpAdminRoot: '/admin/' }, '/Admin/inject/x', /editor has routes under \/admin\/inject/],
    ['a route a node added to the editor', standalone, '/my-node/7', /route of the editor/],
  ] as Array<[string, Record<string, unknown>, string, RegExp]>) {
    it(`keeps the Express route with ${why}`, () => {
      assert.match(directRouteBlocker(settings as any, editor(), path) ?? 'null', reason);
    });
  }
});
