// The app's data: one table of todos, changed only by events. Every client (tab, browser) keeps its
// own copy; the events travel through the sync server and each client applies them to its table.
import { Events, makeSchema, Schema, State } from '@livestore/livestore'

export const tables = {
  todos: State.SQLite.table({
    name: 'todos',
    columns: {
      id: State.SQLite.text({ primaryKey: true }),
      text: State.SQLite.text({ default: '' }),
      completed: State.SQLite.boolean({ default: false }),
      createdAt: State.SQLite.integer({ default: 0 }),
    },
  }),
}

export const events = {
  todoCreated: Events.synced({
    name: 'v1.TodoCreated',
    schema: Schema.Struct({ id: Schema.String, text: Schema.String, createdAt: Schema.Number }),
  }),
  todoToggled: Events.synced({
    name: 'v1.TodoToggled',
    schema: Schema.Struct({ id: Schema.String, completed: Schema.Boolean }),
  }),
}

const materializers = State.SQLite.materializers(events, {
  'v1.TodoCreated': ({ id, text, createdAt }) => tables.todos.insert({ id, text, createdAt }),
  'v1.TodoToggled': ({ id, completed }) => tables.todos.update({ completed }).where({ id }),
})

export const schema = makeSchema({ events, state: State.SQLite.makeState({ tables, materializers }) })
