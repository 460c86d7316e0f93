// An in-memory service manager for workflow tests on the time-skipping server, where the point is
// the workflow's decisions. Real systemd is exercised by test/integration and test/e2e.
import type { ServiceManager, UnitStatus } from '../../src/activities/service-manager';
import { ServiceCommandError } from '../../src/activities/service-manager';

interface FakeUnit {
  activeState: string;
  subState: string;
  mainPid: number;
  invocationId: string;
  enterUs: number;
  /** After a restart the unit fails instead of running. */
  failsOnStart: boolean;
  /** systemctl restart itself exits non-zero. */
  restartCommandFails: boolean;
  restarts: number;
}

export class FakeManager implements ServiceManager {
  readonly kind = 'fake';
  private units = new Map<string, FakeUnit>();
  private seq = 100;
  readonly calls: { op: 'status' | 'restart'; unit: string }[] = [];

  private unit(name: string): FakeUnit {
    let u = this.units.get(name);
    if (!u) {
      u = {
        activeState: 'active',
        subState: 'running',
        mainPid: ++this.seq,
        invocationId: `inv-${this.seq}`,
        enterUs: this.seq,
        failsOnStart: false,
        restartCommandFails: false,
        restarts: 0,
      };
      this.units.set(name, u);
    }
    return u;
  }

  /** Simulates `systemctl stop` (or a crash). */
  stop(name: string): void {
    Object.assign(this.unit(name), { activeState: 'inactive', subState: 'dead', mainPid: 0 });
  }

  /** The unit keeps running but is otherwise broken (a stall): systemd says active. */
  set(name: string, patch: Partial<Pick<FakeUnit, 'failsOnStart' | 'restartCommandFails' | 'activeState'>>): void {
    Object.assign(this.unit(name), patch);
  }

  restartsOf(name: string): number {
    return this.units.get(name)?.restarts ?? 0;
  }

  async status(name: string): Promise<UnitStatus> {
    this.calls.push({ op: 'status', unit: name });
    const u = this.unit(name);
    return {
      unit: name,
      loadState: 'loaded',
      activeState: u.activeState,
      subState: u.subState,
      mainPid: u.mainPid,
      invocationId: u.invocationId,
      activeEnterMonotonicUs: u.enterUs,
      nRestarts: 0,
    };
  }

  async restart(name: string): Promise<void> {
    this.calls.push({ op: 'restart', unit: name });
    const u = this.unit(name);
    if (u.restartCommandFails) {
      throw new ServiceCommandError(`systemctl restart ${name} failed: Job failed`, {
        code: 1,
        stdout: '',
        stderr: 'Job failed',
      });
    }
    u.restarts++;
    const n = ++this.seq;
    Object.assign(u, { invocationId: `inv-${n}`, enterUs: n });
    if (u.failsOnStart) Object.assign(u, { activeState: 'failed', subState: 'failed', mainPid: 0 });
    else Object.assign(u, { activeState: 'active', subState: 'running', mainPid: n });
  }
}
