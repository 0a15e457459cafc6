// k8s.ts: the operator's thin edge to the API server: informers (list + watch
// caches) and the few writes the operator makes (VipTable shards, VIP status
// and finalizers, Service and VipPool status, Events), over @kubernetes/client-node, at the xdplb.io
// coordinates of src/api, each request timed for an optional observer (the
// operator's metrics). Nothing here decides anything.
import { createHash } from 'node:crypto';
import {
  CoreV1Api,
  CustomObjectsApi,
  DiscoveryV1Api,
  KubeConfig,
  makeInformer,
  PatchStrategy,
  setHeaderOptions,
  type Informer,
  type KubernetesObject,
  type ObjectCache,
} from '@kubernetes/client-node';
import { GROUP, VERSION } from '../api/coordinates.js';
import { ErrorCodes, XdplbError } from '../core/errors.js';

export type Cached<T extends KubernetesObject> = Informer<T> & ObjectCache<T>;

export interface Obj extends KubernetesObject {
  spec?: Record<string, unknown>;
  status?: Record<string, unknown>;
}

/** A request finished: `code` is the HTTP status of a failure (0: none came back), null on success. */
export type RequestObserver = (verb: string, resource: string, seconds: number, code: number | null) => void;

export function loadKubeConfig(path?: string): KubeConfig {
  const kc = new KubeConfig();
  if (path !== undefined) kc.loadFromFile(path);
  else kc.loadFromDefault();
  // client-node makes one https.Agent per cluster and user, without keep-alive:
  // every API call would pay a new TCP and TLS handshake, tens of
  // milliseconds on the failover path (report -> decide -> publish). Its
  // agent factory is private; we only add keepAlive to the options it is given.
  const hooks = kc as unknown as {
    createAgent(cluster: unknown, options: Record<string, unknown>): unknown;
    createDispatcher(cluster: { server?: string } | null, options: Record<string, unknown>): unknown;
  };
  const createAgent = hooks.createAgent.bind(kc);
  hooks.createAgent = (cluster, options) => createAgent(cluster, { ...options, keepAlive: true });
  // Its fetch-based API clients build a new undici dispatcher for every
  // request, so each request opened its own TLS connection (measured: a
  // third of the operator's CPU at 100 VIPs went to handshakes). One
  // dispatcher per server and TLS identity keeps its connections instead;
  // a rotated client certificate or CA gets a new one.
  const createDispatcher = hooks.createDispatcher.bind(kc);
  const dispatchers = new Map<string, unknown>();
  hooks.createDispatcher = (cluster, options) => {
    const identity = createHash('sha256');
    for (const part of [cluster?.server, options.ca, options.cert, options.key, options.pfx, options.passphrase, options.servername, options.rejectUnauthorized]) {
      identity.update(part === undefined ? '-' : Buffer.isBuffer(part) ? part : String(part));
      identity.update('\0');
    }
    const key = identity.digest('hex');
    if (!dispatchers.has(key)) dispatchers.set(key, createDispatcher(cluster, options));
    return dispatchers.get(key);
  };
  return kc;
}

export class Kube {
  readonly kc: KubeConfig;
  readonly custom: CustomObjectsApi;
  readonly core: CoreV1Api;
  readonly discovery: DiscoveryV1Api;

  /** Told of every request the methods below make (operator metrics). */
  readonly #onRequest: RequestObserver | undefined;

  constructor(kc: KubeConfig, onRequest?: RequestObserver) {
    this.kc = kc;
    this.#onRequest = onRequest;
    this.custom = kc.makeApiClient(CustomObjectsApi);
    this.core = kc.makeApiClient(CoreV1Api);
    this.discovery = kc.makeApiClient(DiscoveryV1Api);
  }

  /** An informer over every namespace (or one) of an xdplb.io resource. */
  customInformer(plural: string, namespace?: string): Cached<Obj> {
    const path = namespace === undefined ? `/apis/${GROUP}/${VERSION}/${plural}` : `/apis/${GROUP}/${VERSION}/namespaces/${namespace}/${plural}`;
    return makeInformer<Obj>(this.kc, path, () =>
      this.timed('list', plural, () =>
        namespace === undefined
          ? this.custom.listClusterCustomObject({ group: GROUP, version: VERSION, plural })
          : this.custom.listNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural }),
      ),
    );
  }

  /** EndpointSlices of the given Services only (label kubernetes.io/service-name). */
  endpointSliceInformer(serviceNames: readonly string[]): Cached<Obj> {
    const labelSelector = `kubernetes.io/service-name in (${serviceNames.join(',')})`;
    return makeInformer<Obj>(
      this.kc,
      '/apis/discovery.k8s.io/v1/endpointslices',
      () => this.timed('list', 'endpointslices', () => this.discovery.listEndpointSliceForAllNamespaces({ labelSelector })) as never,
      labelSelector,
    );
  }

  nodeInformer(): Cached<Obj> {
    return makeInformer<Obj>(this.kc, '/api/v1/nodes', () => this.timed('list', 'nodes', () => this.core.listNode()) as never);
  }

  /** Every Service (the operator gives those of type LoadBalancer of its class their address). */
  serviceInformer(): Cached<Obj> {
    return makeInformer<Obj>(this.kc, '/api/v1/services', () => this.timed('list', 'services', () => this.core.listServiceForAllNamespaces()) as never);
  }

  /** Every Namespace (their labels, for VipPool namespace selectors). */
  namespaceInformer(): Cached<Obj> {
    return makeInformer<Obj>(this.kc, '/api/v1/namespaces', () => this.timed('list', 'namespaces', () => this.core.listNamespace()) as never);
  }

  /** A JSON merge patch of a Service's status; a `metadata.resourceVersion` in it makes it conditional. */
  async patchServiceStatus(namespace: string, name: string, body: Record<string, unknown>): Promise<void> {
    await this.timed('patch', 'services/status', () => this.core.patchNamespacedServiceStatus({ namespace, name, body }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch)));
  }

  /** A merge patch of a cluster-scoped xdplb.io object's status. */
  async patchClusterStatus(plural: string, name: string, status: unknown): Promise<void> {
    await this.timed('patch', `${plural}/status`, () =>
      this.custom.patchClusterCustomObjectStatus({ group: GROUP, version: VERSION, plural, name, body: { status } }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch)),
    );
  }

  /** Runs one API request, timing it for the request observer. */
  async timed<T>(verb: string, resource: string, request: () => Promise<T>): Promise<T> {
    const start = performance.now();
    try {
      const out = await request();
      this.#onRequest?.(verb, resource, (performance.now() - start) / 1000, null);
      return out;
    } catch (e) {
      this.#onRequest?.(verb, resource, (performance.now() - start) / 1000, statusCode(e) ?? 0);
      throw e;
    }
  }

  async patchStatus(plural: string, namespace: string, name: string, status: unknown): Promise<void> {
    await this.timed('patch', `${plural}/status`, () =>
      this.custom.patchNamespacedCustomObjectStatus(
        { group: GROUP, version: VERSION, namespace, plural, name, body: { status } },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
      ),
    );
  }

  async setFinalizers(plural: string, namespace: string, name: string, finalizers: string[], resourceVersion: string): Promise<void> {
    await this.timed('patch', plural, () =>
      this.custom.patchNamespacedCustomObject(
        { group: GROUP, version: VERSION, namespace, plural, name, body: { metadata: { finalizers, resourceVersion } } },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
      ),
    );
  }

  /** One object of an xdplb.io kind, read from the API server (not a cache). */
  async getObject(plural: string, namespace: string, name: string): Promise<Obj> {
    return (await this.timed('get', plural, () => this.custom.getNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural, name }))) as Obj;
  }

  /** A JSON merge patch of the object; a `metadata.resourceVersion` in it makes it conditional (409 when the object moved on). */
  async mergePatch(plural: string, namespace: string, name: string, body: Record<string, unknown>): Promise<void> {
    await this.timed('patch', plural, () =>
      this.custom.patchNamespacedCustomObject(
        { group: GROUP, version: VERSION, namespace, plural, name, body },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
      ),
    );
  }

  /**
   * Creates or replaces the object. With the resourceVersion the caller's
   * cache holds, a replace is tried first (one round trip on the hot path);
   * a conflict or a missing object falls back to create, then read and replace.
   */
  async apply(plural: string, namespace: string, body: Obj, cachedVersion?: string): Promise<void> {
    const name = body.metadata!.name!;
    if (cachedVersion !== undefined) {
      try {
        await this.timed('update', plural, () => this.custom.replaceNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural, name, body: { ...body, metadata: { ...body.metadata, resourceVersion: cachedVersion } } }));
        return;
      } catch (e) {
        if (statusCode(e) !== 409 && statusCode(e) !== 404) throw e;
      }
    }
    try {
      await this.timed('create', plural, () => this.custom.createNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural, body }));
    } catch (e) {
      if (statusCode(e) !== 409) throw e;
      const current = (await this.timed('get', plural, () => this.custom.getNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural, name }))) as Obj;
      await this.timed('update', plural, () => this.custom.replaceNamespacedCustomObject({
        group: GROUP,
        version: VERSION,
        namespace,
        plural,
        name,
        body: { ...body, metadata: { ...body.metadata, resourceVersion: current.metadata!.resourceVersion } },
      }));
    }
  }

  /** Creates the object unless one of its name exists (whatever it holds). */
  async createIfMissing(plural: string, namespace: string, body: Obj): Promise<void> {
    try {
      await this.timed('create', plural, () => this.custom.createNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural, body }));
    } catch (e) {
      if (statusCode(e) !== 409) throw e;
    }
  }

  /**
   * Creates an object that is never changed once written (a published table
   * shard). If it exists already with the same spec (a retried create), that
   * is success; with another spec it is a CONFLICT error: the caller's cache
   * was behind, and the retry plans again from a fresher one.
   */
  async createImmutable(plural: string, namespace: string, body: Obj): Promise<void> {
    try {
      await this.timed('create', plural, () => this.custom.createNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural, body }));
    } catch (e) {
      if (statusCode(e) !== 409) throw e;
      const name = body.metadata!.name!;
      const current = (await this.timed('get', plural, () => this.custom.getNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural, name }))) as Obj;
      if (JSON.stringify(current.spec) !== JSON.stringify(body.spec)) {
        throw new XdplbError(ErrorCodes.CONFLICT, `${plural} ${namespace}/${name} exists with another spec; a published generation is never changed`, { cause: e });
      }
    }
  }

  /**
   * Deletes a custom object; one already gone is not an error. With
   * `ifVersion`, only if it is still at that resourceVersion (a precondition
   * the API server checks): one changed since is kept, and CONFLICT is thrown.
   */
  async delete(plural: string, namespace: string, name: string, ifVersion?: string): Promise<void> {
    const body = ifVersion === undefined ? {} : { body: { preconditions: { resourceVersion: ifVersion } } };
    try {
      await this.timed('delete', plural, () => this.custom.deleteNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural, name, ...body }));
    } catch (e) {
      if (statusCode(e) === 404) return;
      if (statusCode(e) === 409 && ifVersion !== undefined) throw new XdplbError(ErrorCodes.CONFLICT, `${plural} ${namespace}/${name} changed since version ${ifVersion}: not deleted`, { cause: e });
      throw e;
    }
  }

  async event(involved: Obj, type: 'Normal' | 'Warning', reason: string, message: string, now: Date): Promise<void> {
    // A cluster-scoped object's Events live in the default namespace, as kubectl describe looks for them.
    const ns = involved.metadata!.namespace ?? 'default';
    await this.timed('create', 'events', () => this.core.createNamespacedEvent({
      namespace: ns,
      body: {
        metadata: { generateName: `${involved.metadata!.name!}.`, namespace: ns },
        involvedObject: { apiVersion: involved.apiVersion, kind: involved.kind, name: involved.metadata!.name, namespace: involved.metadata!.namespace, uid: involved.metadata!.uid },
        type,
        reason,
        message,
        firstTimestamp: now,
        lastTimestamp: now,
        count: 1,
        source: { component: 'xdplb-operator' },
        reportingComponent: 'xdplb.io/operator',
      },
    }));
  }
}

/** HTTP status of a client-node error (ApiException has `code`). */
export function statusCode(e: unknown): number | undefined {
  const c = (e as { code?: unknown; statusCode?: unknown }).code ?? (e as { statusCode?: unknown }).statusCode;
  return typeof c === 'number' ? c : undefined;
}
