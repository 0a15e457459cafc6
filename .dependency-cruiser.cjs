// .dependency-cruiser.cjs: the dependency rules between xdplb's folders,
// checked in CI (`npm run lint:deps`). Dependencies point down:
//   cli -> agent, operator -> kube, bpf, net, config -> api -> core
// Agent and operator never import each other; nothing in the product imports
// the CLI, the lab (lab/: namespaces, local control plane, demo) or the tests;
// the core imports no I/O module of ours.
/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    { name: 'agent-not-operator', severity: 'error', comment: 'The agent and the operator share only neutral modules (kube, net, config, core).', from: { path: '^src/agent/' }, to: { path: '^src/operator/' } },
    { name: 'operator-not-agent', severity: 'error', comment: 'The agent and the operator share only neutral modules (kube, net, config, core).', from: { path: '^src/operator/' }, to: { path: '^src/agent/' } },
    { name: 'nothing-imports-cli', severity: 'error', comment: 'The CLI is the top: the product never imports it (the lab may use its io helpers).', from: { path: '^src/', pathNot: '^src/cli/' }, to: { path: '^src/cli/' } },
    { name: 'product-not-lab', severity: 'error', comment: 'The lab and the demo are not part of the product or the image.', from: { path: '^src/' }, to: { path: '^(lab|test|bench)/' } },
    {
      name: 'core-is-pure',
      severity: 'error',
      comment: 'src/core decides; it imports none of the I/O edges.',
      from: { path: '^src/core/' },
      to: { path: '^src/(agent|operator|cli|kube|bpf|net|config|api)/' },
    },
    {
      name: 'neutral-modules-stay-neutral',
      severity: 'error',
      comment: 'kube, net, config and bpf serve both sides: they import neither side nor the CLI.',
      from: { path: '^src/(kube|net|config|bpf)/' },
      to: { path: '^src/(agent|operator|cli)/' },
    },
    {
      name: 'api-is-the-source',
      severity: 'error',
      comment: 'src/api (one typed schema per CRD) sits just above the core: it imports only src/core.',
      from: { path: '^src/api/' },
      to: { path: '^src/(agent|operator|cli|kube|bpf|net|config)/' },
    },
    { name: 'no-circular', severity: 'error', from: {}, to: { circular: true } },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { exportsFields: ['exports'], conditionNames: ['import', 'require', 'node', 'default'], extensions: ['.ts', '.js', '.mjs'] },
  },
};
