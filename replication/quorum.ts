import { ReplicantError, Codes } from '../core/errors.js'

/**
 * The majority rule of membership changes (docs/CONSISTENCY.md): a change from generation g
 * commits only when a strict majority of the members of the configuration at g, the proposer
 * among them, has promised g+1 to it. Two majorities of one configuration share a member, and
 * a member promises a generation to one id only, so two configurations of one generation
 * cannot both commit.
 */

/** How many of `members` make a strict majority. */
export function majorityOf (members: number): number {
  return Math.floor(members / 2) + 1
}

/** One member's answer to a promise request. */
export interface MemberAnswer {
  peerId: string
  answer: 'promised' | 'refused' | 'unreachable' | 'in-doubt'
  /** Why it refused, or why it could not be asked. */
  error?: string
  /** The proposer itself. */
  self?: true
  /** `in-doubt`: the member's promise of that generation to another change whose outcome it does not know. */
  inDoubt?: { genId: string, proposer: string }
}

export function describeAnswers (answers: readonly MemberAnswer[], selfId: string): string {
  return answers.map(a => `${a.peerId}${a.peerId === selfId ? ' (this node)' : ''}: ${a.answer}${a.error !== undefined ? ` (${a.error})` : ''}`).join('; ')
}

/** Whether the promises in `answers` are a majority of the configuration's `members`. */
export function hasQuorum (answers: readonly MemberAnswer[], members: number): boolean {
  return answers.filter(a => a.answer === 'promised').length >= majorityOf(members)
}

/** The change could not gather a majority: nothing changed; names every member's answer. */
export class NoQuorumError extends ReplicantError {
  constructor (volume: string, what: string, generation: number, members: number, answers: readonly MemberAnswer[], selfId: string) {
    const promised = answers.filter(a => a.answer === 'promised').length
    super(Codes.NO_QUORUM,
      `change of '${volume}' (${what}) not made: ${promised} of ${members} members promised generation ${generation}, a majority is ${majorityOf(members)}: ` +
      `${describeAnswers(answers, selfId)}; nothing changed. Retry when more members are reachable, or use --force (API: "force": true) ` +
      'to make the change without a majority (risk: members that cannot be reached may make another change of the same generation; the two are then refused with GENERATION_CONFLICT when they meet)',
      { volume, generation, members, needed: majorityOf(members), answers: answers.map(a => ({ ...a })) })
    this.name = 'NoQuorumError'
  }
}

/**
 * Two or more configurations of the next generation are promised in doubt among the members
 * that answered: any of them may have been committed (by a proposer cut off before its
 * announce), so none may be completed and no new one made over them. Nothing changed.
 */
export class InDoubtError extends ReplicantError {
  constructor (volume: string, what: string, generation: number, answers: readonly MemberAnswer[], selfId: string) {
    const doubts = answers.filter(a => a.answer === 'in-doubt' && a.inDoubt !== undefined)
    const ids = new Set(doubts.map(a => a.inDoubt!.genId))
    const who = doubts.map(a => `${a.peerId}${a.peerId === selfId ? ' (this node)' : ''} holds id ${a.inDoubt!.genId} (proposed by ${a.inDoubt!.proposer})`).join('; ')
    super(Codes.GENERATION_IN_DOUBT,
      `change of '${volume}' (${what}) not made: generation ${generation} is promised to ${ids.size} different changes whose outcome is not known: ${who}; ` +
      'any one of them may have been committed by a proposer cut off before its announce, so none can be completed safely; nothing changed. ' +
      'Bring back their proposers (or any member that holds generation ' + String(generation) + ') and retry, or use --force (API: "force": true) to make this change over them ' +
      '(risk: if one of them was committed, generation ' + String(generation) + ' then has two configurations)',
      { volume, generation, answers: answers.map(a => ({ ...a })) })
    this.name = 'InDoubtError'
  }
}
