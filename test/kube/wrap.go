package kube

import "strings"

// WrapTaskRun is a TaskRun (as JSON decodes it) as a PipelineRun of one
// task, with the same metadata, its taskSpec or taskRef, its params and
// workspaces passed through, its timeout and retries the task's, its
// service account and podTemplate the run's taskRunTemplate and its step,
// sidecar and compute overrides the task's taskRunSpecs: the controller
// runs PipelineRuns only.
func WrapTaskRun(tr map[string]any) map[string]any {
	spec := tr["spec"].(map[string]any)
	task := map[string]any{"name": "task"}
	if ref, ok := spec["taskRef"].(map[string]any); ok {
		// A TaskRun's taskRef kind is a Task's in any case ("task"); a
		// PipelineTask's is a custom task's unless it is exactly "Task".
		if k, _ := ref["kind"].(string); strings.EqualFold(k, "Task") {
			ref["kind"] = "Task"
		}
		task["taskRef"] = ref
	} else {
		task["taskSpec"] = spec["taskSpec"]
	}
	pipeline := map[string]any{"tasks": []any{task}}
	prSpec := map[string]any{"pipelineSpec": pipeline}
	if params, ok := spec["params"].([]any); ok {
		var decl, pass []any
		for _, p := range params {
			p := p.(map[string]any)
			name := p["name"].(string)
			switch p["value"].(type) {
			case []any:
				decl = append(decl, map[string]any{"name": name, "type": "array"})
				pass = append(pass, map[string]any{"name": name, "value": []any{"$(params." + name + "[*])"}})
			case map[string]any:
				// A Pipeline's object param declares its keys.
				props := map[string]any{}
				for k := range p["value"].(map[string]any) {
					props[k] = map[string]any{"type": "string"}
				}
				decl = append(decl, map[string]any{"name": name, "type": "object", "properties": props})
				pass = append(pass, map[string]any{"name": name, "value": "$(params." + name + "[*])"})
			default:
				decl = append(decl, map[string]any{"name": name})
				pass = append(pass, map[string]any{"name": name, "value": "$(params." + name + ")"})
			}
		}
		prSpec["params"], pipeline["params"], task["params"] = params, decl, pass
	}
	if ws, ok := spec["workspaces"].([]any); ok {
		var decl, bind []any
		for _, w := range ws {
			name := w.(map[string]any)["name"]
			decl = append(decl, map[string]any{"name": name})
			bind = append(bind, map[string]any{"name": name, "workspace": name})
		}
		prSpec["workspaces"], pipeline["workspaces"], task["workspaces"] = ws, decl, bind
	}
	if timeout, ok := spec["timeout"]; ok {
		task["timeout"] = timeout
	}
	if retries, ok := spec["retries"]; ok {
		task["retries"] = retries
	}
	// What the TaskRun says of its Pod, as the PipelineRun's for its tasks.
	template := map[string]any{}
	for _, f := range []string{"serviceAccountName", "podTemplate"} {
		if v, ok := spec[f]; ok {
			template[f] = v
		}
	}
	if len(template) > 0 {
		prSpec["taskRunTemplate"] = template
	}
	overrides := map[string]any{}
	for _, f := range []string{"stepSpecs", "sidecarSpecs", "computeResources"} {
		if v, ok := spec[f]; ok {
			overrides[f] = v
		}
	}
	if len(overrides) > 0 {
		overrides["pipelineTaskName"] = "task"
		prSpec["taskRunSpecs"] = []any{overrides}
	}
	return map[string]any{"apiVersion": "tekton.dev/v1", "kind": "PipelineRun", "metadata": tr["metadata"], "spec": prSpec}
}

// Delegate makes a PipelineRun or TaskRun (as JSON decodes it) a
// PipelineRun the controller runs: a TaskRun wrapped (WrapTaskRun),
// spec.managedBy set, and each volumeClaimTemplate workspace an emptyDir,
// since the local cluster has no storage provisioner to bind a claim.
func Delegate(obj map[string]any) map[string]any {
	if obj["kind"] == "TaskRun" {
		obj = WrapTaskRun(obj)
	}
	spec := obj["spec"].(map[string]any)
	spec["managedBy"] = "pod-runner.dev/controller"
	if ws, ok := spec["workspaces"].([]any); ok {
		for _, w := range ws {
			if w := w.(map[string]any); w["volumeClaimTemplate"] != nil {
				delete(w, "volumeClaimTemplate")
				w["emptyDir"] = map[string]any{}
			}
		}
	}
	return obj
}
