// check.js DIR EDGEMUXD — validate every manifest in DIR (packaging/kubernetes)
// offline, without a cluster:
//  - core objects against Kubernetes' own schemas (npm kubernetes-models,
//    generated from the API's OpenAPI definitions), KServe's resources
//    against the fields KServe documents (kserve.js); an unknown kind fails;
//  - what a schema cannot see: selectors that select nothing, named ports
//    and ConfigMaps that do not exist, extended resources no device plugin
//    advertises, a runtime no InferenceService can match, and edgemuxd
//    arguments that edgemuxd (its --help) does not accept or that listen on
//    loopback only where a Service or KServe must reach them;
//  - the Containerfile: bookworm-slim, the packages make deb builds, and the
//    systemd unit's command line and user.
// Prints one line per problem and exits 1 if there is any.
// NODE_PATH must hold .deps/kubernetes/node_modules (scripts/setup).
"use strict";

const fs = require("fs");
const path = require("path");
const { execFileSync } = require("child_process");
const yaml = require("js-yaml");
const kserve = require("./kserve.js");

const [dir, edgemuxd] = process.argv.slice(2);
if (!dir || !edgemuxd) {
  console.error("usage: check.js MANIFEST_DIR EDGEMUXD");
  process.exit(2);
}
const errors = [];
const fail = (where, msg) => errors.push(`${where}: ${msg}`);

// ---- load -------------------------------------------------------------------
const docs = [];
const files = fs.readdirSync(dir).filter((f) => /\.ya?ml$/.test(f)).sort();
if (files.length === 0) fail(dir, "no manifests (*.yaml)");
for (const f of files) {
  let all;
  try {
    all = yaml.loadAll(fs.readFileSync(path.join(dir, f), "utf8"));
  } catch (e) {
    fail(f, `not YAML: ${e.message}`);
    continue;
  }
  all.forEach((d, i) => {
    if (d !== null && d !== undefined) docs.push({ file: `${f}#${i}`, d });
  });
}

// ---- schemas ------------------------------------------------------------------
function modelClass(apiVersion, kind) {
  // kubernetes-models lays classes out as <group>/<version>/<Kind>, the core
  // group as <version>/<Kind>.
  if (!/^[A-Za-z0-9.]+(\/[A-Za-z0-9]+)?$/.test(apiVersion) || !/^[A-Za-z]+$/.test(kind))
    return null;
  try {
    return require(`kubernetes-models/${apiVersion}/${kind}`)[kind] || null;
  } catch (e) {
    return null;
  }
}

for (const { file, d } of docs) {
  const where = `${file} ${d.kind}/${d.metadata && d.metadata.name}`;
  if (typeof d.apiVersion !== "string" || typeof d.kind !== "string") {
    fail(file, "apiVersion and kind are required");
    continue;
  }
  if (!d.metadata || typeof d.metadata.name !== "string" || !d.metadata.name)
    fail(where, "metadata.name is required");
  const custom = kserve[`${d.apiVersion} ${d.kind}`];
  if (custom) {
    const errs = [];
    custom(d, errs);
    errs.forEach((e) => fail(where, e));
    continue;
  }
  const Model = modelClass(d.apiVersion, d.kind);
  if (!Model) {
    fail(where, `${d.apiVersion} ${d.kind} is neither a Kubernetes kind nor a KServe one this check knows`);
    continue;
  }
  try {
    new Model(d).validate();
  } catch (e) {
    fail(where, `Kubernetes schema: ${e.message}`);
  }
}

// ---- references between objects ------------------------------------------------
const ns = (d) => (d.metadata && d.metadata.namespace) || "default";
const of = (kind) => docs.filter((x) => x.d.kind === kind).map((x) => x.d);
const matches = (sel, labels) =>
  sel && Object.keys(sel).length > 0 &&
  Object.entries(sel).every(([k, v]) => labels && labels[k] === v);
const workloads = [...of("DaemonSet"), ...of("Deployment"), ...of("StatefulSet")];
const podSpecs = [];
for (const w of workloads) {
  const where = `${w.kind}/${w.metadata.name}`;
  const t = (w.spec && w.spec.template) || {};
  const labels = (t.metadata && t.metadata.labels) || {};
  const sel = w.spec && w.spec.selector && w.spec.selector.matchLabels;
  if (!matches(sel, labels))
    fail(where, "spec.selector.matchLabels does not select the pod template's labels (the API server refuses it)");
  if (t.spec) podSpecs.push({ where, ns: ns(w), labels, spec: t.spec });
}
const runtimes = of("ServingRuntime");
for (const r of runtimes)
  if (r.spec) podSpecs.push({ where: `ServingRuntime/${r.metadata.name}`, ns: ns(r), labels: {}, spec: r.spec });

const namespaces = new Set(["default", "kube-system", ...of("Namespace").map((n) => n.metadata.name)]);
for (const { file, d } of docs)
  if (d.metadata && d.metadata.namespace && !namespaces.has(d.metadata.namespace))
    fail(`${file} ${d.kind}/${d.metadata.name}`, `namespace "${d.metadata.namespace}" is not created by any manifest here`);

for (const s of of("Service")) {
  const where = `Service/${s.metadata.name}`;
  const sel = s.spec && s.spec.selector;
  const pods = podSpecs.filter((p) => p.ns === ns(s) && matches(sel, p.labels));
  if (pods.length === 0) {
    fail(where, "its selector matches no pod template here");
    continue;
  }
  for (const port of (s.spec && s.spec.ports) || []) {
    if (typeof port.targetPort !== "string") continue;
    const named = pods.some((p) => p.spec.containers.some((c) =>
      (c.ports || []).some((cp) => cp.name === port.targetPort)));
    if (!named) fail(where, `targetPort "${port.targetPort}" is no container port's name`);
  }
}

// Extended resources a pod asks for must be advertised: the generic device
// plugin's --device blocks name them <domain>/<name>.
const advertised = new Set();
for (const w of workloads) {
  for (const c of (w.spec.template.spec && w.spec.template.spec.containers) || []) {
    if (!/generic-device-plugin/.test(c.image || "")) continue;
    const args = c.args || [];
    const domainArg = args.find((a) => /^--domain=/.test(a));
    const domain = domainArg ? domainArg.split("=")[1] : "squat.ai";
    args.forEach((a, i) => {
      if (a !== "--device" || i + 1 >= args.length) return;
      let spec;
      try {
        spec = yaml.load(args[i + 1]);
      } catch (e) {
        fail(`${w.kind}/${w.metadata.name}`, `--device ${JSON.stringify(args[i + 1])}: not YAML: ${e.message}`);
        return;
      }
      if (!spec || typeof spec.name !== "string" || !Array.isArray(spec.groups) || spec.groups.length === 0) {
        fail(`${w.kind}/${w.metadata.name}`, "a --device needs a name and at least one group");
        return;
      }
      for (const g of spec.groups)
        for (const u of g.usb || [])
          if (!/^[0-9a-f]{4}$/.test(u.vendor || "") || !/^[0-9a-f]{4}$/.test(u.product || ""))
            fail(`${w.kind}/${w.metadata.name}`, `--device ${spec.name}: usb vendor/product must be 4 hex digits (quoted)`);
      advertised.add(`${domain}/${spec.name}`);
    });
  }
}
for (const p of podSpecs)
  for (const c of p.spec.containers || [])
    for (const r of Object.keys((c.resources && c.resources.limits) || {}))
      if (r.includes("/") && !advertised.has(r))
        fail(`${p.where} container ${c.name}`, `asks for ${r}, which no device plugin here advertises (${[...advertised].join(", ") || "none"})`);

const configMaps = of("ConfigMap");
for (const p of podSpecs)
  for (const v of p.spec.volumes || []) {
    if (!v.configMap) continue;
    const cm = configMaps.find((m) => m.metadata.name === v.configMap.name && ns(m) === p.ns);
    if (!cm) {
      fail(p.where, `volume ${v.name}: no ConfigMap ${v.configMap.name} in namespace ${p.ns}`);
      continue;
    }
    for (const [k, text] of Object.entries(cm.data || {}))
      if (/\.json$/.test(k)) {
        try {
          JSON.parse(text);
        } catch (e) {
          fail(`ConfigMap/${cm.metadata.name}`, `${k} is not JSON: ${e.message}`);
        }
      }
  }

// ---- edgemuxd's command lines ----------------------------------------------------
const help = execFileSync(edgemuxd, ["--help"], { encoding: "utf8" });
const options = new Set(help.match(/--[a-z][a-z0-9-]*/g));
function edgemuxdArgs(where, c, exposed) {
  const args = [...(c.command || []).slice(1), ...(c.args || [])];
  args.forEach((a, i) => {
    if (!a.startsWith("--")) return;
    const opt = a.split("=")[0];
    if (!options.has(opt)) fail(where, `edgemuxd has no option ${opt} (edgemuxd --help)`);
    if (opt === "--http" && exposed) {
      const v = a.includes("=") ? a.split("=")[1] : args[i + 1];
      // --http PORT listens on 127.0.0.1: nothing outside the pod reaches it.
      if (!/^(0\.0\.0\.0|\[::\]):\d+$/.test(v || ""))
        fail(where, `--http ${v} listens on loopback only; a Service or KServe reaches the pod's IP: use 0.0.0.0:PORT`);
      const port = Number((v || "").split(":").pop());
      if (!(c.ports || []).some((cp) => cp.containerPort === port))
        fail(where, `--http listens on ${port}, which is no containerPort of ${c.name}`);
    }
  });
}
for (const p of podSpecs)
  for (const c of p.spec.containers || [])
    if (/edgemux/.test(c.image || "")) edgemuxdArgs(`${p.where} container ${c.name}`, c, true);

// ---- KServe: the example must select the runtime ------------------------------------
for (const s of of("InferenceService")) {
  const where = `InferenceService/${s.metadata.name}`;
  const m = s.spec && s.spec.predictor && s.spec.predictor.model;
  if (!m || !m.modelFormat) continue;
  const r = runtimes.find((x) => x.metadata.name === m.runtime && ns(x) === ns(s));
  if (!r) {
    fail(where, `runtime "${m.runtime}" is no ServingRuntime in namespace ${ns(s)}`);
    continue;
  }
  if (!(r.spec.supportedModelFormats || []).some((f) => f.name === m.modelFormat.name))
    fail(where, `ServingRuntime/${r.metadata.name} does not support model format "${m.modelFormat.name}"`);
  if (m.protocolVersion && !(r.spec.protocolVersions || []).includes(m.protocolVersion))
    fail(where, `ServingRuntime/${r.metadata.name} does not speak protocol ${m.protocolVersion}`);
}
if (of("InferenceService").length === 0) fail(dir, "no example InferenceService");
if (runtimes.length === 0) fail(dir, "no ServingRuntime");

// ---- the Containerfile ---------------------------------------------------------------
const cf = path.join(dir, "Containerfile");
if (!fs.existsSync(cf)) {
  fail(dir, "no Containerfile");
} else {
  // Continuation lines joined, comments dropped.
  const lines = fs.readFileSync(cf, "utf8").replace(/\\\n/g, " ").split("\n")
    .map((l) => l.trim()).filter((l) => l && !l.startsWith("#"));
  const ins = lines.map((l) => [l.split(/\s+/)[0].toUpperCase(), l.replace(/^\S+\s*/, "")]);
  const known = new Set(["FROM", "RUN", "COPY", "ADD", "USER", "ENTRYPOINT", "CMD", "ENV", "ARG",
    "LABEL", "EXPOSE", "WORKDIR", "VOLUME", "STOPSIGNAL", "HEALTHCHECK", "SHELL", "ONBUILD"]);
  ins.forEach(([op]) => { if (!known.has(op)) fail("Containerfile", `unknown instruction ${op}`); });
  if (!ins.length || ins[0][0] !== "FROM" || !/^debian:bookworm-slim\b/.test(ins[0][1]))
    fail("Containerfile", "must start FROM debian:bookworm-slim");
  const copied = ins.filter(([op]) => op === "COPY").map(([, a]) => a).join(" ");
  for (const pkg of ["edgemuxd", "libedgemux0"])
    if (!copied.includes(`${pkg}_`)) fail("Containerfile", `does not copy the ${pkg} package`);
  const user = ins.filter(([op]) => op === "USER").map(([, a]) => a).pop();
  if (!user || user.split(":")[0] !== "edgemux") fail("Containerfile", "must run as USER edgemux, as the unit does");
  const ep = ins.filter(([op]) => op === "ENTRYPOINT").map(([, a]) => a).pop();
  let entry = null;
  try {
    entry = JSON.parse(ep);
  } catch (e) {
    fail("Containerfile", "ENTRYPOINT must be the exec (JSON) form, so signals reach edgemuxd");
  }
  const unit = path.join(__dirname, "../../packaging/systemd/edgemuxd.service.in");
  const exec = (fs.readFileSync(unit, "utf8").match(/^ExecStart=(.*)$/m) || [])[1] || "";
  const want = exec.replace("@CMAKE_INSTALL_FULL_SBINDIR@", "/usr/sbin")
    .replace("@CMAKE_INSTALL_FULL_SYSCONFDIR@", "/etc").split(/\s+/);
  if (entry && JSON.stringify(entry) !== JSON.stringify(want))
    fail("Containerfile", `ENTRYPOINT ${JSON.stringify(entry)} is not the unit's ExecStart ${JSON.stringify(want)}`);
}

for (const e of errors) console.log(`FAIL ${e}`);
if (errors.length) process.exit(1);
console.log(`ok: ${docs.length} objects in ${files.length} manifests and the Containerfile: ` +
  docs.map((x) => x.d.kind).join(", "));
