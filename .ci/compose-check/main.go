// compose-check loads a Compose file with compose-go, the loader Docker Compose v2
// itself uses for `docker compose config`: the Compose Specification's JSON schema,
// interpolation, extends/anchors, profiles and the consistency checks (unknown
// services in depends_on, missing networks and volumes...). Every profile is enabled.
//
// It prints the resolved project as JSON (what `docker compose config --format json`
// prints) on stdout, so the test suite can check images and commands; on a problem
// it prints compose-go's message on stderr and exits 1.
//
//	go build -o compose-check . && ./compose-check ../../docker-compose.yml
package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/compose-spec/compose-go/v2/cli"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: compose-check COMPOSE_FILE [MORE_FILES...]")
		os.Exit(2)
	}
	files := os.Args[1:]
	options, err := cli.NewProjectOptions(
		files,
		cli.WithOsEnv,
		cli.WithWorkingDirectory(filepath.Dir(files[0])),
		cli.WithProfiles([]string{"*"}),
		cli.WithConsistency(true),
	)
	if err != nil {
		fail(files[0], err)
	}
	project, err := options.LoadProject(context.Background())
	if err != nil {
		fail(files[0], err)
	}
	out, err := project.MarshalJSON()
	if err != nil {
		fail(files[0], err)
	}
	os.Stdout.Write(out)
	os.Stdout.WriteString("\n")
}

func fail(file string, err error) {
	fmt.Fprintf(os.Stderr, "%s: %v\n", file, err)
	os.Exit(1)
}
