/**
 * The "path already in use" error of the two receivers names the node that has the path by its name and
 * type (by type and id when it has no name), so a user who imported several flows finds it.
 */
import { strict as assert } from 'node:assert';
import cmsCdrIn = require('../../../src/nodes/cms-cdr-in');
import ccfsCallbackIn = require('../../../src/nodes/ccfs-callback-in');
import { helper, capture, settle, useTempUserDir } from '../../helpers/red';
import { nodeLabel } from '../../../src/nodes/lib/receiver';

describe('receivers: a path already in use', () => {
  useTempUserDir('each', 'cdrflow-receiver-');
  const cms = capture(cmsCdrIn as any);
  const ccfs = capture(ccfsCallbackIn as any);
  // the test helper spies on the Node prototype: keep the calls made by this node
  const errorsOf = (id: string) => {
    const node = helper.getNode(id) as any;
    return (node.error.getCalls() as any[]).filter((c) => c.thisValue === node).map((c) => String(c.args[0]));
  };
  const statusOf = (id: string) => {
    const node = helper.getNode(id) as any;
    return (node.status.getCalls() as any[]).filter((c) => c.thisValue === node).map((c) => c.args[0]).at(-1);
  };

  it('names the node that has the path by its name and type', async () => {
    await helper.load(cms.module, [
      { id: 'tab', type: 'tab' },
      { id: 'first', z: 'tab', type: 'cms-cdr-in', name: 'CMS CDRs (demo)', path: '/cdr', wires: [[], []] },
      { id: 'second', z: 'tab', type: 'cms-cdr-in', name: 'CMS CDRs to SQLite', path: '/cdr', wires: [[], []] },
    ] as any[]);
    await settle();
    const [loser, winner] = errorsOf('second').length ? ['second', 'first'] : ['first', 'second'];
    const other = helper.getNode(winner) as any;
    assert.deepEqual(errorsOf(loser).filter((e) => /already used/.test(e)), [`/cdr is already used by "${other.name}" (cms-cdr-in): give each receiver its own path`]);
    assert.equal(statusOf(loser).fill, 'red');
    assert.deepEqual(errorsOf(winner), []);
  });

  it('across the two receiver types, and by type and id when the node has no name', async () => {
    await helper.load([cms.module, ccfs.module], [
      { id: 'tab', type: 'tab' },
      { id: 'cb', z: 'tab', type: 'ccfs-callback-in', path: '/shared', wires: [[], []] },
      { id: 'rx', z: 'tab', type: 'cms-cdr-in', name: 'late', path: '/shared', wires: [[], []] },
    ] as any[]);
    await settle();
    const all = [...errorsOf('rx'), ...errorsOf('cb')].filter((e) => /already used/.test(e));
    assert.equal(all.length, 1, all.join('\n'));
    assert.match(all[0], /^\/shared is already used by (ccfs-callback-in cb|"late" \(cms-cdr-in\)): give each receiver its own path$/);
  });

  it('keeps a description that is not a node id as it is', async () => {
    await helper.load(cms.module, [{ id: 'tab', type: 'tab' }]);
    assert.equal(nodeLabel(cms.red.RED, 'another node (an http in node?)'), 'another node (an http in node?)');
  });
});
