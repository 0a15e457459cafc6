// dockerfile.test.ts: static checks of the image recipe (no container engine
// here, so the image is never built in tests): two stages on pinned Node 24
// bases, the build the README describes, a runtime with only the packages the
// agent loads or runs, every file the runtime needs copied from the build
// stage, OCI labels, a non-root default user and the CLI as the entrypoint.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

const DOCKERFILE = readFileSync(new URL('../../Dockerfile', import.meta.url), 'utf8');

interface Instruction {
  op: string;
  args: string;
}
interface Stage {
  image: string;
  name: string | undefined;
  body: Instruction[];
}

/** Build arguments declared before the first FROM, with their defaults. */
const baseArgs = new Map<string, string>();

/** Instructions (continuations joined, comments dropped), grouped by FROM (an ARG in FROM read as its default). */
function parse(text: string): Stage[] {
  const logical: string[] = [];
  let current = '';
  for (const raw of text.split('\n')) {
    if (/^\s*#/.test(raw)) continue;
    const line = raw.trimEnd();
    if (line.endsWith('\\')) {
      current += `${line.slice(0, -1)} `;
      continue;
    }
    current += line;
    if (current.trim() !== '') logical.push(current.trim().replace(/\s+/g, ' '));
    current = '';
  }
  const stages: Stage[] = [];
  for (const l of logical) {
    const m = /^(\S+)\s*(.*)$/.exec(l)!;
    const op = m[1]!.toUpperCase();
    const args = m[2]!;
    if (op === 'ARG' && stages.length === 0) {
      // An ARG before the first FROM: a build argument FROM may use, with its default.
      const a = /^(\w+)=(\S+)$/.exec(args);
      expect(a, `ARG ${args} has a default`).not.toBeNull();
      baseArgs.set(a![1]!, a![2]!);
      continue;
    }
    if (op === 'FROM') {
      const f = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(args);
      expect(f, `FROM ${args}`).not.toBeNull();
      const image = f![1]!.replace(/^\$\{(\w+)\}$/, (_, name: string) => baseArgs.get(name) ?? `\${${name}}`);
      stages.push({ image, name: f![2], body: [] });
      continue;
    }
    expect(stages.length, `${op} before any FROM`).toBeGreaterThan(0);
    stages.at(-1)!.body.push({ op, args });
  }
  return stages;
}

const stages = parse(DOCKERFILE);
const build = stages[0]!;
const runtime = stages.at(-1)!;
const ops = (s: Stage, op: string): string[] => s.body.filter((i) => i.op === op).map((i) => i.args);

describe('Dockerfile', () => {
  it('has a build stage and a runtime stage', () => {
    expect(stages).toHaveLength(2);
    expect(build.name).toBeDefined();
    expect(runtime).not.toBe(build);
  });

  it('takes both bases as build arguments (scripts/build-image passes locally built ones), defaulting to the official images', () => {
    expect([...baseArgs.keys()].sort()).toEqual(['BUILD_BASE', 'RUNTIME_BASE']);
    expect(DOCKERFILE).toMatch(/^FROM \$\{BUILD_BASE\} AS build$/m);
    expect(DOCKERFILE).toMatch(/^FROM \$\{RUNTIME_BASE\} AS runtime$/m);
  });

  it('pins both base images to one Node 24 release (no floating tag)', () => {
    const b = /^node:(24\.\d+\.\d+)-bookworm$/.exec(build.image);
    const r = /^node:(24\.\d+\.\d+)-bookworm-slim$/.exec(runtime.image);
    expect(b, build.image).not.toBeNull();
    expect(r, runtime.image).not.toBeNull();
    expect(b![1]).toBe(r![1]);
  });

  it('builds the product only: npm ci, then npm run build:product (make -C bpf and tsc over src/), then drops dev dependencies', () => {
    const runs = ops(build, 'RUN').join(' && ');
    const ci = runs.indexOf('npm ci');
    const make = runs.indexOf('npm run build:product');
    const prune = runs.search(/npm prune --omit=dev|npm ci [^&]*--omit=dev/);
    expect(ci).toBeGreaterThanOrEqual(0);
    expect(make).toBeGreaterThan(ci);
    expect(prune).toBeGreaterThan(make);
    expect(runs).toMatch(/\bclang\b/);
    expect(runs).toMatch(/\blibbpf-dev\b/);
    expect(runs).toMatch(/\bmake\b/);
    // What `npm run build:product` reads must be in the build stage, and nothing of the lab.
    const copied = ops(build, 'COPY').join('\n');
    for (const f of ['package.json', 'package-lock.json', 'tsconfig.json', 'tsconfig.build.json', 'bpf', 'src']) {
      expect(copied).toMatch(new RegExp(`(^|\\s)${f.replaceAll('.', '\\.')}(\\s|$)`, 'm'));
    }
    for (const f of ['lab', 'bench', 'test']) expect(copied).not.toMatch(new RegExp(`(^|\\s)\\.?/?${f}(\\s|/|$)`, 'm'));
    expect(JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')).scripts['build:product']).toBe('make -s -C bpf && tsc -p tsconfig.build.json');
    const product = JSON.parse(readFileSync(new URL('../../tsconfig.build.json', import.meta.url), 'utf8')) as { include: string[] };
    expect(product.include).toEqual(['src/**/*.ts']);
  });

  it('sends no lab, demo, test or benchmark file in the build context (.dockerignore)', () => {
    const rules = readFileSync(new URL('../../.dockerignore', import.meta.url), 'utf8')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l !== '' && !l.startsWith('#'));
    // Docker's rule: the last pattern matching a path decides; "!" re-includes.
    const matches = (pattern: string, path: string): boolean => {
      const p = pattern.replace(/\/$/, '');
      return p === '*' || path === p || path.startsWith(`${p}/`);
    };
    const inContext = (path: string): boolean => {
      let included = true;
      for (const r of rules) {
        const negate = r.startsWith('!');
        if (matches(negate ? r.slice(1) : r, path)) included = negate;
      }
      return included;
    };
    const files = execFileSync('git', ['ls-files'], { cwd: new URL('../..', import.meta.url), encoding: 'utf8' }).trim().split('\n');
    const sent = files.filter(inContext);
    expect(sent.filter((f) => /^(lab|test|bench|docs|examples|charts|scripts)\//.test(f) || /demo/.test(f))).toEqual([]);
    for (const needed of ['package.json', 'package-lock.json', 'tsconfig.json', 'tsconfig.build.json', 'src/cli/main.ts', 'bpf/xdp_lb.c']) expect(sent).toContain(needed);
  });

  it('installs only libbpf1 and iproute2 in the runtime, without recommends', () => {
    const runs = ops(runtime, 'RUN');
    const installs = runs.flatMap((r) => [...r.matchAll(/apt-get install ([^&;]*)/g)].map((m) => m[1]!.trim()));
    expect(installs).toHaveLength(1);
    const words = installs[0]!.split(' ');
    expect(words).toContain('--no-install-recommends');
    const packages = words.filter((w) => !w.startsWith('-'));
    expect(packages.sort()).toEqual(['iproute2', 'libbpf1']);
    expect(runs.join(' ')).toMatch(/rm -rf \/var\/lib\/apt\/lists/);
    expect(runs.join(' ')).not.toMatch(/\bnpm\b/);
  });

  it('copies every file the runtime needs from the build stage', () => {
    const copies = ops(runtime, 'COPY').map((c) => c.split(' '));
    const from = (src: RegExp): string[] | undefined =>
      copies.find((c) => c[0] === `--from=${build.name}` && c.slice(1, -1).some((s) => src.test(s)));
    expect(from(/\/dist\/?$/), 'dist/').toBeDefined();
    expect(from(/\/node_modules\/?$/), 'node_modules').toBeDefined();
    expect(from(/\/package\.json$/), 'package.json').toBeDefined();
    const objects = from(/\/bpf\/build(\/\*\.o|\/)?$/);
    expect(objects, 'bpf/build/*.o').toBeDefined();
    // objectPath() looks two directories above dist/src/bpf: /app/bpf/build.
    expect(objects!.at(-1)).toMatch(/^(\.\/|\/app\/)bpf\/build\/?$/);
    expect(ops(runtime, 'WORKDIR')).toEqual(['/app']);
  });

  it('runs the xdplb CLI as the entrypoint', () => {
    const ep = ops(runtime, 'ENTRYPOINT');
    expect(ep).toHaveLength(1);
    const argv = JSON.parse(ep[0]!) as string[];
    expect(argv[0]).toBe('node');
    expect(argv[1]).toMatch(/(^|\/)dist\/src\/cli\/main\.js$/);
  });

  it('carries the OCI labels', () => {
    const labels = ops(runtime, 'LABEL').join(' ');
    for (const key of ['source', 'title', 'description', 'licenses']) {
      expect(labels).toMatch(new RegExp(`org\\.opencontainers\\.image\\.${key}="[^"]+"`));
    }
    expect(labels).toContain('org.opencontainers.image.licenses="Apache-2.0"');
  });

  it('runs as a non-root user by default', () => {
    const users = ops(runtime, 'USER');
    expect(users.length).toBeGreaterThan(0);
    const user = users.at(-1)!.split(':')[0]!;
    expect(user).toMatch(/^\d+$/);
    expect(Number(user)).toBeGreaterThan(0);
  });
});
