package planpb

// Object is the Kubernetes kind a KeyRef or EnvFrom names, as messages
// about it say: "ConfigMap" or "Secret".
func (k KeyRef_Kind) Object() string {
	if k == KeyRef_SECRET {
		return "Secret"
	}
	return "ConfigMap"
}
