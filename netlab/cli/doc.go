// Package cli is netlab's command line: one file per verb, each a small flags struct and a
// RunE that calls the library. Commands that need root say so in one line and exit 1.
package cli
