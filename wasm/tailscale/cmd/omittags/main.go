// Command omittags prints the -tags value for the wasm build: a ts_omit_<feature>
// tag for every omittable feature of tailscale.com that is not (transitively)
// needed by the features named on the command line. Run on the host:
//
//	go run ./cmd/omittags dns health netstack useexitnode
package main

import (
	"fmt"
	"os"
	"slices"
	"strings"

	"tailscale.com/feature/featuretags"
)

func main() {
	keep := map[featuretags.FeatureTag]bool{}
	for _, name := range os.Args[1:] {
		ft := featuretags.FeatureTag(name)
		if _, ok := featuretags.Features[ft]; !ok {
			fmt.Fprintf(os.Stderr, "omittags: unknown feature %q\n", name)
			os.Exit(2)
		}
		for dep := range featuretags.Requires(ft) {
			keep[dep] = true
		}
	}
	var tags []string
	for ft := range featuretags.Features {
		if ft != "" && ft.IsOmittable() && !keep[ft] {
			tags = append(tags, ft.OmitTag())
		}
	}
	slices.Sort(tags)
	fmt.Println(strings.Join(tags, ","))
}
