/**
 * The drain in OpenTelemetry, through Deno's built-in support
 * (`OTEL_DENO=true`; `Deno.telemetry`, no dependency): a `graceful.drain`
 * span per server drain and a `graceful.shutdown` span per shutdown, with
 * their cause, counts and exit code, and two metrics,
 * `graceful.drain.duration` (ms) and `graceful.drain.requests` (by
 * `graceful.outcome`: drained, cut). Deno exports them, and flushes them at
 * `Deno.exit`. Without `OTEL_DENO` Deno's tracer is a no-op: a few µs, once
 * per drain. A failure here never touches the drain: it is swallowed.
 */

type Attributes = Record<string, string | number | boolean>;

interface Span {
  end(endTime?: number): void;
}
interface Telemetry {
  tracerProvider: {
    getTracer(name: string): {
      startSpan(
        name: string,
        options: { startTime?: number; attributes?: Attributes },
      ): Span;
    };
  };
  meterProvider: {
    getMeter(name: string): {
      createHistogram(name: string, options: { unit: string }): {
        record(value: number, attributes?: Attributes): void;
      };
      createCounter(name: string): {
        add(value: number, attributes?: Attributes): void;
      };
    };
  };
}

const NAME = "@graceful/http";

function telemetry(): Telemetry | undefined {
  return (Deno as unknown as { telemetry?: Telemetry }).telemetry;
}

/** Records a span from `start` (`performance.now()`) to now. */
function span(name: string, start: number, attributes: Attributes): void {
  try {
    const origin = performance.timeOrigin;
    telemetry()?.tracerProvider.getTracer(NAME)
      .startSpan(name, { startTime: origin + start, attributes })
      .end(origin + performance.now());
  } catch {
    // Telemetry never fails a drain.
  }
}

/** One server's drain, and its metrics. */
export function recordDrain(
  start: number,
  where: string,
  result: {
    reason: string;
    drained: number;
    cut: readonly string[];
    broken: readonly string[];
    forced: boolean;
  },
): void {
  const attributes = {
    "graceful.reason": result.reason,
    "server.address": where,
  };
  span("graceful.drain", start, {
    ...attributes,
    "graceful.drained": result.drained,
    "graceful.cut": result.cut.length,
    "graceful.broken": result.broken.length,
    "graceful.forced": result.forced,
  });
  try {
    const meter = telemetry()?.meterProvider.getMeter(NAME);
    meter?.createHistogram("graceful.drain.duration", { unit: "ms" })
      .record(performance.now() - start, attributes);
    const requests = meter?.createCounter("graceful.drain.requests");
    requests?.add(result.drained, {
      ...attributes,
      "graceful.outcome": "drained",
    });
    requests?.add(result.cut.length, {
      ...attributes,
      "graceful.outcome": "cut",
    });
  } catch {
    // as above
  }
}

/** One shutdown: drains and hooks, up to the exit code. */
export function recordShutdown(
  start: number,
  result: { reason: string; exitCode: number; failedHooks: readonly string[] },
): void {
  span("graceful.shutdown", start, {
    "graceful.reason": result.reason,
    "graceful.exit_code": result.exitCode,
    "graceful.hooks.failed": result.failedHooks.length,
  });
}
