/* Editor helpers shared by the @cdrflow/node-red-cdr node dialogs (served by Node-RED at
   resources/@cdrflow/node-red-cdr/cdrflow-editor.js). */
(function () {
    'use strict';
    window.cdrflowEditor = {
        /** Adds the persistent context stores of settings.js to a "state" select and selects `current`. */
        fillStateStores: function (select, current) {
            var stores = (RED.settings.context && RED.settings.context.stores) || [];
            stores.forEach(function (s) {
                if (s !== 'memory') { $('<option>').val(s).text('context: ' + s).appendTo(select); }
            });
            select.val(current || '');
        }
    };
})();
