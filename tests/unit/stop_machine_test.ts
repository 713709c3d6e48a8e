/**
 * The stop rule over every ordering of the events production delivers: the
 * group's signal, a wrapper's copy of it, the supervisor's stop command (or
 * `start()`, or stdin's end), and a deliberate second signal.
 */
import assert from "node:assert/strict";
import {
  SAME_SIGNAL_MS,
  type StopAction,
  type StopEvent,
  StopMachine,
} from "../../lifecycle/_stop_machine.ts";

type Named = { name: string; event: StopEvent };

function run(events: StopEvent[]): StopAction[] {
  const machine = new StopMachine();
  return events.map((event) => machine.next(event));
}

function permutations<T>(items: T[]): T[][] {
  if (items.length <= 1) return [items];
  return items.flatMap((item, i) =>
    permutations([...items.slice(0, i), ...items.slice(i + 1)]).map((
      rest,
    ) => [item, ...rest])
  );
}

/**
 * Every order of one stop as a group delivers it: the group's signal, a
 * wrapper's copy, the supervisor's command and start(), each apart by
 * `gap` ms. None forces, exactly one starts.
 */
for (const gap of [0, 0.2, 5, 50, 66]) {
  Deno.test(`stop machine: every order of group signal, wrapper copy, command and start() ${gap} ms apart is one stop`, () => {
    const kinds: Named[] = [
      { name: "group signal", event: { kind: "signal", at: 0 } },
      { name: "wrapper's copy", event: { kind: "signal", at: 0 } },
      { name: "supervisor's stop", event: { kind: "begin", at: 0 } },
      { name: "start()", event: { kind: "begin", at: 0 } },
    ];
    for (const order of permutations(kinds)) {
      const events = order.map(({ event }, i) => ({ ...event, at: i * gap }));
      const actions = run(events);
      const label = order.map((o) => o.name).join(" → ");
      assert.equal(actions[0], "start", label);
      assert.ok(!actions.includes("force"), `${label}: ${actions}`);
      assert.equal(actions.filter((a) => a === "start").length, 1, label);
    }
  });
}

Deno.test("stop machine: a command-begun stop takes the first signal as the same stop however late it comes", () => {
  for (const late of [0, 200, 1_000, 60_000]) {
    assert.deepEqual(
      run([
        { kind: "begin", at: 0 },
        { kind: "signal", at: late },
        { kind: "signal", at: late + 0.3 },
      ]),
      ["start", "joined", "echo"],
      `signal ${late} ms after the command`,
    );
  }
});

Deno.test("stop machine: a deliberate second signal forces, whoever began the stop", () => {
  // Begun by a signal: the next one past the echo window forces.
  assert.deepEqual(
    run([
      { kind: "signal", at: 0 },
      { kind: "signal", at: SAME_SIGNAL_MS },
    ]),
    ["start", "force"],
  );
  // Begun by a command: the signal that joins it, then a deliberate one.
  assert.deepEqual(
    run([
      { kind: "begin", at: 0 },
      { kind: "signal", at: 10 },
      { kind: "signal", at: 10 + SAME_SIGNAL_MS },
    ]),
    ["start", "joined", "force"],
  );
  // Copies of the second are past caring: it already forced.
  assert.deepEqual(
    run([
      { kind: "signal", at: 0 },
      { kind: "begin", at: 1 },
      { kind: "signal", at: 0.2 },
      { kind: "signal", at: 1_500 },
    ]),
    ["start", "already", "echo", "force"],
  );
});

Deno.test("stop machine: the echo window counts from the stop's first signal, not from the command", () => {
  // The command at 0 starts; the group's signal at 500 joins; its copy at
  // 500.2 is an echo even though it is 500 ms after the start.
  assert.deepEqual(
    run([
      { kind: "begin", at: 0 },
      { kind: "signal", at: 500 },
      { kind: "signal", at: 500.2 },
      { kind: "signal", at: 699 },
      { kind: "signal", at: 700 },
    ]),
    ["start", "joined", "echo", "echo", "force"],
  );
});

Deno.test("stop machine: begins after the start are nothing to do, before or after signals", () => {
  assert.deepEqual(
    run([
      { kind: "begin", at: 0 },
      { kind: "begin", at: 1 },
      { kind: "begin", at: 5_000 },
    ]),
    ["start", "already", "already"],
  );
  const machine = new StopMachine();
  assert.equal(machine.started, false);
  machine.next({ kind: "signal", at: 0 });
  assert.equal(machine.started, true);
  assert.equal(machine.next({ kind: "begin", at: 10_000 }), "already");
  assert.equal(machine.next({ kind: "signal", at: 10_000 }), "force");
});

Deno.test("stop machine: the echo window is a constructor argument", () => {
  const machine = new StopMachine(10);
  assert.equal(machine.next({ kind: "signal", at: 0 }), "start");
  assert.equal(machine.next({ kind: "signal", at: 9.9 }), "echo");
  assert.equal(machine.next({ kind: "signal", at: 10 }), "force");
});
