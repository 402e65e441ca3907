// kserve.js — KServe's ServingRuntime (serving.kserve.io/v1alpha1) and
// InferenceService (serving.kserve.io/v1beta1) checked against the fields
// KServe documents (https://kserve.github.io/website/ "API reference":
// ServingRuntimeSpec, SupportedModelFormat, InferenceServiceSpec,
// PredictorSpec, ModelSpec, ModelFormat). kubernetes-models has no schema for
// these custom resources, so the documented fields are listed here; unknown
// fields are refused (a misspelt field is silently dropped by the API server,
// which is how a runtime ends up never selected). Containers inside them are
// core Containers and are validated by kubernetes-models.
"use strict";

const { Container } = require("kubernetes-models/v1/Container");

// ServingRuntimeSpec: its own fields, plus the embedded ServingRuntimePodSpec.
const RUNTIME_SPEC = new Set([
  "supportedModelFormats", "multiModel", "disabled", "protocolVersions",
  "grpcEndpoint", "grpcDataEndpoint", "httpDataEndpoint", "replicas",
  "storageHelper", "builtInAdapter", "workerSpec", "imagePullSecrets",
  // ServingRuntimePodSpec
  "containers", "volumes", "nodeSelector", "affinity", "tolerations",
  "labels", "annotations", "hostIPC", "schedulerName", "priorityClassName",
]);
const MODEL_FORMAT_ENTRY = new Set(["name", "version", "autoSelect", "priority"]);
const PROTOCOLS = new Set(["v1", "v2", "grpc-v1", "grpc-v2"]);

const ISVC_SPEC = new Set(["predictor", "explainer", "transformer"]);
// PredictorSpec: the framework specs, model, workerSpec, the
// ComponentExtensionSpec (scaling) and the embedded PodSpec's usual fields.
const PREDICTOR = new Set([
  "model", "sklearn", "xgboost", "tensorflow", "pytorch", "triton", "onnx",
  "huggingface", "pmml", "lightgbm", "paddle", "workerSpec",
  "minReplicas", "maxReplicas", "scaleTarget", "scaleMetric", "scaleMetricType",
  "containerConcurrency", "timeout", "canaryTrafficPercent", "logger",
  "batcher", "labels", "annotations", "deploymentStrategy",
  "containers", "volumes", "nodeSelector", "affinity", "tolerations",
  "serviceAccountName", "imagePullSecrets", "priorityClassName",
  "securityContext", "runtimeClassName",
]);
// ModelSpec: its own fields and the embedded PredictorExtensionSpec (a
// Container's fields plus storageUri, runtimeVersion, protocolVersion,
// storage).
const MODEL = new Set([
  "modelFormat", "runtime", "storageUri", "runtimeVersion", "protocolVersion",
  "storage", "name", "image", "command", "args", "workingDir", "ports",
  "envFrom", "env", "resources", "volumeMounts", "livenessProbe",
  "readinessProbe", "startupProbe", "securityContext",
]);
const MODEL_FORMAT = new Set(["name", "version"]);
const STORAGE_URI = /^(gs|s3|pvc|https?|hdfs|webhdfs|oci|hf):\/\/\S+$/;

function unknown(errors, where, obj, allowed) {
  if (!obj || typeof obj !== "object" || Array.isArray(obj)) {
    errors.push(`${where}: must be an object`);
    return false;
  }
  for (const k of Object.keys(obj))
    if (!allowed.has(k)) errors.push(`${where}.${k}: not a field KServe documents`);
  return true;
}

function container(errors, where, c) {
  try {
    new Container(c).validate();
  } catch (e) {
    errors.push(`${where}: ${e.message}`);
  }
}

function servingRuntime(doc, errors) {
  const s = doc.spec;
  if (!unknown(errors, "spec", s, RUNTIME_SPEC)) return;
  const formats = s.supportedModelFormats;
  if (!Array.isArray(formats) || formats.length === 0)
    errors.push("spec.supportedModelFormats: at least one model format is needed");
  else
    formats.forEach((f, i) => {
      const w = `spec.supportedModelFormats[${i}]`;
      if (!unknown(errors, w, f, MODEL_FORMAT_ENTRY)) return;
      if (typeof f.name !== "string" || !f.name) errors.push(`${w}.name: required`);
      if (f.version !== undefined && typeof f.version !== "string")
        errors.push(`${w}.version: must be a string (quote it)`);
      if (f.autoSelect !== undefined && typeof f.autoSelect !== "boolean")
        errors.push(`${w}.autoSelect: must be true or false`);
    });
  for (const p of s.protocolVersions || [])
    if (!PROTOCOLS.has(p)) errors.push(`spec.protocolVersions: "${p}" is not one of ${[...PROTOCOLS]}`);
  if (!Array.isArray(s.containers) || s.containers.length === 0) {
    errors.push("spec.containers: the runtime needs a container");
  } else {
    s.containers.forEach((c, i) => container(errors, `spec.containers[${i}]`, c));
    // KServe injects the model (storage initializer) and routes traffic to
    // the container of this name only.
    if (!s.containers.some((c) => c.name === "kserve-container"))
      errors.push('spec.containers: none is named "kserve-container", which KServe serves through');
  }
}

function inferenceService(doc, errors) {
  const s = doc.spec;
  if (!unknown(errors, "spec", s, ISVC_SPEC)) return;
  if (!unknown(errors, "spec.predictor", s.predictor, PREDICTOR)) return;
  const m = s.predictor.model;
  if (m === undefined) return;
  if (!unknown(errors, "spec.predictor.model", m, MODEL)) return;
  if (!unknown(errors, "spec.predictor.model.modelFormat", m.modelFormat, MODEL_FORMAT)) return;
  if (typeof m.modelFormat.name !== "string" || !m.modelFormat.name)
    errors.push("spec.predictor.model.modelFormat.name: required");
  if (m.protocolVersion !== undefined && !PROTOCOLS.has(m.protocolVersion))
    errors.push(`spec.predictor.model.protocolVersion: "${m.protocolVersion}" is not one of ${[...PROTOCOLS]}`);
  if (m.storageUri !== undefined && !STORAGE_URI.test(m.storageUri))
    errors.push(`spec.predictor.model.storageUri: "${m.storageUri}" is not a storage URI KServe fetches`);
  for (const k of ["minReplicas", "maxReplicas"])
    if (s.predictor[k] !== undefined && !(Number.isInteger(s.predictor[k]) && s.predictor[k] >= 0))
      errors.push(`spec.predictor.${k}: must be a non-negative integer`);
}

module.exports = {
  "serving.kserve.io/v1alpha1 ServingRuntime": servingRuntime,
  "serving.kserve.io/v1alpha1 ClusterServingRuntime": servingRuntime,
  "serving.kserve.io/v1beta1 InferenceService": inferenceService,
};
