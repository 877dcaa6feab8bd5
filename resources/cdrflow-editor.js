/* Editor helpers shared by the @cdrflow/node-red-cdr node dialogs (served by Node-RED at
   resources/@cdrflow/node-red-cdr/cdrflow-editor.js). */
(function () {
    'use strict';
    var stores = null; // asked once per editor session
    window.cdrflowEditor = {
        /**
         * Adds the persistent context stores to a "state" select and selects `current`. The list comes
         * from the runtime (GET cdrflow/state-stores), which applies the same rule the nodes apply at
         * run time, so what is offered here is what will be used. A saved choice that is not (or no
         * longer) available stays visible, marked, instead of being swapped silently.
         */
        fillStateStores: function (select, current) {
            var fill = function (list) {
                list.forEach(function (s) {
                    $('<option>').val(s).text('context: ' + s).appendTo(select);
                });
                if (current && list.indexOf(current) < 0) {
                    $('<option>').val(current).text('context: ' + current + ' (not a persistent store: a file is used)').appendTo(select);
                }
                select.val(current || '');
            };
            if (stores) { fill(stores); return; }
            $.getJSON('cdrflow/state-stores').done(function (r) {
                stores = (r && r.stores) || [];
                fill(stores);
            }).fail(function () { fill([]); });
        }
    };
})();
