// gen-crds.mjs: writes the CRDs generated from src/api (src/api/crdgen.ts,
// compiled into dist/ by `npm run gen:crds` first) into crds/ and the Helm
// chart's copy, charts/xdplb/crds/. test/unit/crds-generated.test.ts checks
// that the committed files are what this writes.
import { readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { renderCrds } from '../dist/src/api/crdgen.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const crds = renderCrds();
for (const dir of ['crds', 'charts/xdplb/crds']) {
  // A kind that is gone leaves no stale file behind.
  for (const f of readdirSync(join(root, dir))) if (f.endsWith('.yaml') && !crds.has(f)) rmSync(join(root, dir, f));
  for (const [file, text] of crds) writeFileSync(join(root, dir, file), text);
  console.log(`Wrote ${crds.size} CRDs to ${dir}/`);
}
