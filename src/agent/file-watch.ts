// file-watch.ts: calls back with a file's content whenever it changes. Watches
// the file's directory (editors replace files by rename, and a mounted
// ConfigMap swaps a symlink, both of which a watch on the file itself misses)
// and also polls, in case the filesystem gives no events; callbacks come only
// when the content really differs, so the agent reconciles once per change.
// A file written in place is seen mid-write: content is reported only once
// two reads `settleMs` apart agree, and an empty file is taken for a write in
// progress, never for "no VIPs" (that takes an explicit `vips: []`).
import { createHash } from 'node:crypto';
import { watch, type FSWatcher } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, dirname } from 'node:path';

export interface FileWatchOptions {
  readonly pollMs?: number;
  /** Two reads this far apart must agree before content is reported. */
  readonly settleMs?: number;
  /** Content already read by the caller: no callback until the file differs from it. */
  readonly initialContent?: string;
  /** Called with the new content, or with an error when the file cannot be read. */
  readonly onChange: (content: string | null, error: NodeJS.ErrnoException | null) => void;
}

export class FileWatch {
  readonly #path: string;
  readonly #options: FileWatchOptions;
  #lastDigest: string | null = null;
  #lastError: string | null = null;
  #watcher: FSWatcher | null = null;
  #timer: NodeJS.Timeout | null = null;
  #reading = false;
  #again = false;
  #stopped = false;

  constructor(path: string, options: FileWatchOptions) {
    this.#path = path;
    this.#options = options;
    if (options.initialContent !== undefined) this.#lastDigest = createHash('sha256').update(options.initialContent).digest('hex');
  }

  /** Reads the file now (a callback unless it equals initialContent) and starts watching. */
  async start(): Promise<void> {
    await this.#check();
    try {
      this.#watcher = watch(dirname(this.#path), (_event, name) => {
        if (name === null || name === basename(this.#path) || name.startsWith('..')) void this.#check();
      });
      this.#watcher.on('error', () => {
        /* the poll still runs */
      });
    } catch {
      /* directory not watchable: the poll still runs */
    }
    const poll = (): void => {
      if (this.#stopped) return;
      this.#timer = setTimeout(() => void this.#check().finally(poll), this.#options.pollMs ?? 500);
    };
    poll();
  }

  /** No callback is made after stop() returns, even for a read already under way. */
  stop(): void {
    this.#stopped = true;
    this.#watcher?.close();
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#watcher = null;
    this.#timer = null;
  }

  /** The file's content once two reads settleMs apart agree. */
  async #readSettled(): Promise<string> {
    let previous = await readFile(this.#path, 'utf8');
    for (;;) {
      await new Promise((r) => setTimeout(r, this.#options.settleMs ?? 50));
      const now = await readFile(this.#path, 'utf8');
      if (now === previous) return now;
      previous = now;
    }
  }

  async #check(): Promise<void> {
    if (this.#stopped) return;
    if (this.#reading) {
      this.#again = true;
      return;
    }
    this.#reading = true;
    try {
      do {
        this.#again = false;
        let content: string;
        try {
          content = await this.#readSettled();
        } catch (e) {
          const err = e as NodeJS.ErrnoException;
          if (this.#stopped) return;
          if (this.#lastError !== err.code) {
            this.#lastError = err.code ?? err.message;
            this.#lastDigest = null;
            this.#options.onChange(null, err);
          }
          continue;
        }
        if (content.length === 0) continue; // mid-write; the next event or poll reads it again
        if (this.#stopped) return;
        const digest = createHash('sha256').update(content).digest('hex');
        if (digest !== this.#lastDigest) {
          this.#lastDigest = digest;
          this.#lastError = null;
          this.#options.onChange(content, null);
        }
      } while (this.#again);
    } finally {
      this.#reading = false;
    }
  }
}
