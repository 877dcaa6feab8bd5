import { strict as assert } from 'node:assert';
import { helper } from '../helpers/red';

describe('test runtime', () => {
  it('is the Node-RED and Node.js this run was asked for', () => {
    const red = (helper as any)._RED;
    const version: string = red.version();
    console.log(`      Node-RED ${version} on Node.js ${process.version}`);
    const expected = process.env.NODE_RED_EXPECT;
    if (expected) assert.ok(version.startsWith(expected), `Node-RED ${version}, expected ${expected}.x`);
    else assert.ok(version.startsWith('4.'), `the default run uses the devDependency Node-RED 4, got ${version}`);
    if (expected === '5') assert.ok(Number(process.versions.node.split('.')[0]) >= 22, `Node-RED 5 needs Node.js 22, got ${process.version}`);
  });
});
