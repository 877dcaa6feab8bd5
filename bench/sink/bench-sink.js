// A downstream node for the benchmark: counts what reaches it and tells the bench through a process event.
module.exports = function (RED) {
  function BenchSink(config) {
    RED.nodes.createNode(this, config);
    this.on('input', (msg, send, done) => {
      const n = Array.isArray(msg.payload) ? msg.payload.length : 1;
      process.emit('bench-sink', n, msg);
      done();
    });
  }
  RED.nodes.registerType('bench-sink', BenchSink);
};
