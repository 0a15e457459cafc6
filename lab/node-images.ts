// node-images.ts: the images the lab node's containerd runs, built here
// without a registry: the pod sandbox (scripts/build-pause-image) and xdplb's
// own (scripts/build-image, from the checkout's Dockerfile). Each script
// caches and prints an OCI archive; the image's name is read back from the
// archive's index (org.opencontainers.image.ref.name), not guessed.
// XDPLB_NODE_IMAGE names an xdplb archive built earlier (a rerun skips the
// image build, about a minute warm).
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

/**
 * A second image of a changed XDP program version, for the upgrade drill:
 * `base` with its xdp_lb.o given an extra ELF note (libbpf skips it; the
 * program is the same, but the object's hash, which is the datapath's
 * version, differs, so an agent of this image takes the upgrade path: new
 * program and maps beside the old, one bpf_link_update). Tagged
 * `<tag>-<suffix>`; cached beside the base archive.
 */
export async function programVariant(base: ImageArchive, suffix: string): Promise<ImageArchive> {
  const archive = base.archive.replace(/\.oci\.tar$/, `-${suffix}.oci.tar`);
  const name = `${base.repository}:${base.tag}-${suffix}`;
  const sh = async (cmd: string, args: readonly string[]): Promise<string> => {
    const r = await run(cmd, args, { timeoutMs: 300_000 });
    if (r.exitCode !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.exitCode}: ${r.stderr.trim()}`);
    return r.stdout.trim();
  };
  const ctr = await sh('buildah', ['from', '--pull=never', `oci-archive:${base.archive}`]);
  try {
    const root = await sh('buildah', ['mount', ctr]);
    const object = join(root, 'app/bpf/build/xdp_lb.o');
    const note = `${archive}.note`;
    await sh('sh', ['-c', `printf 'xdplb program variant %s\\n' "$1" > "$2"`, 'sh', suffix, note]);
    await sh('llvm-objcopy', ['--add-section', `.note.xdplb.variant=${note}`, object]);
    await sh('rm', ['-f', note]);
    await sh('buildah', ['umount', ctr]);
    await sh('buildah', ['commit', '--quiet', ctr, name]);
  } finally {
    await run('buildah', ['rm', ctr]);
  }
  await sh('rm', ['-f', archive]);
  await sh('buildah', ['push', '--quiet', name, `oci-archive:${archive}:${name}`]);
  return archiveImageName(archive);
}
