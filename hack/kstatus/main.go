// Command kstatus reads one Kubernetes object as JSON on stdin and prints the result of
// sigs.k8s.io/cli-utils/pkg/kstatus/status.Compute as JSON: {"status": "...", "message": "..."}.
// The local cluster's tests use it to read ModelDeployment status the way kstatus-based tools
// (kpt, Flux, Config Sync, cli-utils apply) would.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

type result struct {
	Status     string             `json:"status"`
	Message    string             `json:"message"`
	Conditions []status.Condition `json:"conditions,omitempty"`
}

func main() {
	data, err := io.ReadAll(os.Stdin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "kstatus: read stdin:", err)
		os.Exit(2)
	}
	obj := map[string]interface{}{}
	// utiljson turns whole numbers into int64, as unstructured accessors expect
	if err := utiljson.Unmarshal(data, &obj); err != nil {
		fmt.Fprintln(os.Stderr, "kstatus: stdin is not a JSON object:", err)
		os.Exit(2)
	}
	res, err := status.Compute(&unstructured.Unstructured{Object: obj})
	if err != nil {
		fmt.Fprintln(os.Stderr, "kstatus: compute:", err)
		os.Exit(1)
	}
	out, _ := json.Marshal(result{Status: res.Status.String(), Message: res.Message, Conditions: res.Conditions})
	fmt.Println(string(out))
}
