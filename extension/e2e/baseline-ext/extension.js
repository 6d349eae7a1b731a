// Does nothing: its activation time is what the extension host charges any extension at that moment.
exports.activate = () => {};
exports.deactivate = () => {};
