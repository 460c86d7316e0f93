// The client connection's retry of failed gRPC calls: the SDK's policy (which codes, how long to
// wait: defaultGrpcRetryOptions), in an interceptor that is safe to close under. The SDK's default
// interceptor (@temporalio/client 1.24, grpc-retry.ts) starts each retry from a timer that
// Connection.close() does not clear; a retry due after close throws "Channel has been shut down"
// from that timer, an uncaught exception, and its call never settles. Here a retry that cannot
// start ends the call with UNAVAILABLE, and a retry due after the call's deadline is not waited for
// (the call ends at once with DEADLINE_EXCEEDED, as it would have at the deadline, but sooner and
// with the last attempt's error in its details). A status built here keeps the last attempt's
// metadata, and the message always goes on before the status (grpc-js holds a status back while a
// message is still being passed on: a call would never settle).
import {
  InterceptingCall,
  ListenerBuilder,
  RequesterBuilder,
  status as grpcStatus,
  type Interceptor,
  type Metadata,
  type StatusObject,
} from '@grpc/grpc-js';
import { defaultGrpcRetryOptions, type GrpcRetryOptions } from '@temporalio/client';

/** Milliseconds until the call's deadline (Infinity without one). */
function msUntilDeadline(deadline: unknown): number {
  if (deadline instanceof Date) return deadline.getTime() - Date.now();
  if (typeof deadline === 'number' && Number.isFinite(deadline)) return deadline - Date.now();
  return Infinity;
}

export function closeSafeRetryInterceptor(options: GrpcRetryOptions = defaultGrpcRetryOptions()): Interceptor {
  return (callOptions, nextCall) => {
    let sentMessage: unknown;
    let receivedMessage: unknown;
    let passMessage: ((message: unknown) => void) | undefined;
    const requester = new RequesterBuilder()
      .withStart((metadata: Metadata, upstream, next) => {
        let attempt = 1;
        const listener = new ListenerBuilder()
          .withOnReceiveMessage((message, next) => {
            receivedMessage = message;
            passMessage = next;
          })
          .withOnReceiveStatus((firstStatus, nextStatus) => {
            const finish = (s: StatusObject) => {
              // The last attempt's message (a unary call has one, on success) goes on before the status:
              // through the first attempt's listener if that one got a message, directly otherwise.
              if (passMessage) passMessage(receivedMessage);
              else if (receivedMessage !== undefined) upstream.onReceiveMessage(receivedMessage);
              nextStatus(s);
            };
            const onStatus = (s: StatusObject) => {
              if (!options.retryableDecider(attempt, s)) {
                finish(s);
                return;
              }
              const delay = options.delayFunction(attempt, s);
              if (delay >= msUntilDeadline(callOptions.deadline)) {
                // The call ends now as the deadline would end it (callers read DEADLINE_EXCEEDED as
                // "Temporal unreachable, retry later"), with the last attempt's error for the log.
                finish({
                  ...s,
                  code: grpcStatus.DEADLINE_EXCEEDED,
                  details: `no time left to retry; last: ${s.details}`,
                });
                return;
              }
              setTimeout(retry, delay, s);
            };
            const retry = (last: StatusObject) => {
              attempt++;
              let call: ReturnType<typeof nextCall>;
              try {
                call = nextCall(callOptions);
              } catch (err) {
                // The connection was closed meanwhile: the call ends, as unreachable.
                finish({
                  ...last,
                  code: grpcStatus.UNAVAILABLE,
                  details: `Temporal connection closed while waiting to retry (${(err as Error).message}; last: ${last.details})`,
                });
                return;
              }
              call.start(metadata, {
                onReceiveMessage(message: unknown) {
                  receivedMessage = message;
                },
                onReceiveStatus: onStatus,
              });
              call.sendMessage(sentMessage);
              call.halfClose();
            };
            onStatus(firstStatus);
          })
          .build();
        next(metadata, listener);
      })
      .withSendMessage((message, next) => {
        sentMessage = message;
        next(message);
      })
      .build();
    return new InterceptingCall(nextCall(callOptions), requester);
  };
}
