// Writes an export file the way `livestore sync export` (@livestore/cli 0.4.0) writes one: the
// data decoded with its own ExportFileSchema, then its own jsonStringifyPretty
// (commands/import-export.ts). The events come from a JSON file instead of a sync backend.
//
//   node pretty-export.mjs DATA.json OUT.json
//
// Prints, one line per event, JSON.stringify(event.args) (or `<absent>` when the event has no
// args): the text a LiveStore client compares, which a reader of OUT.json must give back.
import fs from 'node:fs'
import { Schema } from '@livestore/utils/effect'
// The package exports only its command; its schema module is reached by path.
import { ExportFileSchema } from './node_modules/@livestore/cli/dist/sync-operations.js'

const [dataPath, outPath] = process.argv.slice(2)
const jsonStringifyPretty = Schema.encodeSync(Schema.parseJson({ space: 2 }))
const data = Schema.decodeUnknownSync(ExportFileSchema)(JSON.parse(fs.readFileSync(dataPath, 'utf8')))
fs.writeFileSync(outPath, jsonStringifyPretty(data))
for (const e of data.events) {
  console.log(e.args === undefined ? '<absent>' : JSON.stringify(e.args))
}
