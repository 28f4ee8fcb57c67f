#!/usr/bin/env python3
"""Regenerates the JSON schemas kubeconform validates deploy/k8s/ against (it cannot
download them here). Not run by make test: the output is committed.

Sources, both Go modules fetched with `go mod download` (the Go module proxy):
  k8s.io/kubernetes@v1.34.1      api/openapi-spec/swagger.json  -> master-standalone-strict/
  github.com/kedacore/keda/v2@v2.21.0  config/crd/bases/*.yaml   -> keda.sh/

Like kubeconform's openapi2jsonschema: every $ref is inlined (standalone), every object
with properties gets additionalProperties: false unless it says otherwise (strict), and
int-or-string / quantity become oneOf string|integer|number.

    go mod download -json k8s.io/kubernetes@v1.34.1 github.com/kedacore/keda/v2@v2.21.0
    python3 deploy/k8s/schemas/generate.py
"""
import json, os, subprocess, sys
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))

def moddir(mod):
    out = subprocess.run(["go", "mod", "download", "-json", mod], check=True, capture_output=True, text=True).stdout
    return json.loads(out)["Dir"]

def strict(s):
    if isinstance(s, dict):
        s = {k: strict(v) for k, v in s.items()}
        if s.get("format") == "int-or-string" or s.get("x-kubernetes-int-or-string"):
            return {"oneOf": [{"type": "string"}, {"type": "integer"}], **({"description": s["description"]} if "description" in s else {})}
        if "properties" in s and "additionalProperties" not in s and not s.get("x-kubernetes-preserve-unknown-fields"):
            s["additionalProperties"] = False
        return s
    if isinstance(s, list):
        return [strict(v) for v in s]
    return s

def inline(s, defs, seen=()):
    if isinstance(s, dict):
        if "$ref" in s:
            name = s["$ref"].split("/")[-1]
            if name in seen:
                return {}
            if name == "io.k8s.apimachinery.pkg.api.resource.Quantity":
                return {"oneOf": [{"type": "string"}, {"type": "number"}]}
            return inline(defs[name], defs, seen + (name,))
        return {k: inline(v, defs, seen) for k, v in s.items()}
    if isinstance(s, list):
        return [inline(v, defs, seen) for v in s]
    return s

def write(path, schema):
    path = os.path.join(HERE, path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(schema, f, indent=1, sort_keys=True)
        f.write("\n")

def main():
    k8s = moddir("k8s.io/kubernetes@v1.34.1")
    with open(os.path.join(k8s, "api/openapi-spec/swagger.json")) as f:
        defs = json.load(f)["definitions"]
    for name, out in [("io.k8s.api.apps.v1.Deployment", "deployment-apps-v1.json"),
                      ("io.k8s.api.core.v1.ServiceAccount", "serviceaccount-v1.json"),
                      ("io.k8s.api.core.v1.ConfigMap", "configmap-v1.json")]:
        s = strict(inline(defs[name], defs))
        s["$schema"] = "http://json-schema.org/schema#"
        s.pop("x-kubernetes-group-version-kind", None)
        write(os.path.join("master-standalone-strict", out), s)
    keda = moddir("github.com/kedacore/keda/v2@v2.21.0")
    for crd in ["keda.sh_scaledobjects.yaml", "keda.sh_triggerauthentications.yaml"]:
        with open(os.path.join(keda, "config/crd/bases", crd)) as f:
            doc = yaml.safe_load(f)
        kind = doc["spec"]["names"]["kind"].lower()
        for v in doc["spec"]["versions"]:
            s = strict(v["schema"]["openAPIV3Schema"])
            s["$schema"] = "http://json-schema.org/schema#"
            write(os.path.join(doc["spec"]["group"], f"{kind}_{v['name']}.json"), s)

if __name__ == "__main__":
    sys.exit(main())
