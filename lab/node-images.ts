// node-images.ts: the images the lab node's containerd runs, built here
// without a registry: the pod sandbox (scripts/build-pause-image) and xdplb's
// own (scripts/build-image, from the checkout's Dockerfile). Each script
// caches and prints an OCI archive; the image's name is read back from the
// archive's index (org.opencontainers.image.ref.name), not guessed.
// XDPLB_NODE_IMAGE names an xdplb archive built earlier (npm run e2e:node
// builds it before the tests).
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { ROOT } from './root.js';
import { run } from './server.js';

export interface ImageArchive {
  /** The OCI archive (tar). */
  archive: string;
  /** Its image's name, as containerd knows it after import: repository:tag. */
  name: string;
  repository: string;
  tag: string;
}

/** The name in an OCI archive's index.json. */
export function archiveImageName(archive: string): ImageArchive {
  const index = JSON.parse(execFileSync('tar', ['-xOf', archive, 'index.json'], { encoding: 'utf8' })) as {
    manifests: { annotations?: Record<string, string> }[];
  };
  const name = index.manifests[0]?.annotations?.['org.opencontainers.image.ref.name'];
  if (name === undefined) throw new Error(`${archive}: no image name in index.json`);
  const colon = name.lastIndexOf(':');
  return { archive, name, repository: name.slice(0, colon), tag: name.slice(colon + 1) };
}

async function script(name: string, args: readonly string[] = []): Promise<string> {
  const r = await run('bash', [join(ROOT, 'scripts', name), ...args], { stdio: 'inherit-stderr', timeoutMs: 30 * 60_000 });
  if (r.exitCode !== 0) throw new Error(`scripts/${name} failed (exit ${r.exitCode})`);
  return r.stdout.trim().split('\n').at(-1) ?? '';
}

export async function pauseImage(): Promise<ImageArchive> {
  const [archive] = (await script('build-pause-image')).split(' ');
  return archiveImageName(archive!);
}

/** xdplb's image: XDPLB_NODE_IMAGE if set, else built now (scripts/build-image, about 40 s warm). */
export async function xdplbImage(): Promise<ImageArchive> {
  const given = process.env.XDPLB_NODE_IMAGE;
  return archiveImageName(given !== undefined && given !== '' ? given : await script('build-image'));
}
