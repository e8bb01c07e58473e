#!/usr/bin/env node
// V8 settings first, before loading the code grows the heap (src/v8-settings.ts says why).
import("../dist/v8-settings.js")
  .then((v8) => {
    v8.applyV8Settings();
    return import("../dist/cli.js");
  })
  .then((cli) => cli.run());
